/**
 * Group commit: the deliveries of all requests that arrive while a queue write is in flight are
 * written together in the next one, then every waiting request is answered. Under load this turns
 * thousands of per-request writes into a few hundred round trips; when idle, a request is written
 * at once (next turn of the event loop). One write at a time measured best here (Redis ingest
 * 4,300 req/s against 3,000 with two in flight): bigger groups mean fewer BullMQ jobs to run.
 */
import type { QueueDriver } from '../queue/types.ts';
import { QueueUnavailableError } from '../errors.ts';

interface Group {
  perOutput: Map<string, string[]>;
  events: number;
  waiters: Array<{ outputs: readonly string[]; resolve: () => void; reject: (err: unknown) => void }>;
}

export class GroupCommit {
  #pending: Group | null = null;
  #inflight = 0;
  #scheduled = false;

  constructor(
    private readonly queue: QueueDriver,
    private readonly maxEvents: number,
    private readonly maxInflight = 1,
  ) {}

  /**
   * Resolves when every delivery is stored; rejects with the queue's error when one of them is not.
   * A write that stored the group for some outputs only fails just the requests of the others.
   */
  submit(deliveries: ReadonlyArray<readonly [output: string, json: string]>): Promise<void> {
    if (deliveries.length === 0) return Promise.resolve();
    const g = (this.#pending ??= { perOutput: new Map(), events: 0, waiters: [] } as Group);
    for (const [output, json] of deliveries) {
      const list = g.perOutput.get(output);
      if (list) list.push(json);
      else g.perOutput.set(output, [json]);
    }
    g.events += deliveries.length;
    const done = new Promise<void>((resolve, reject) => g.waiters.push({ outputs: deliveries.map(([o]) => o), resolve, reject }));
    if (g.events >= this.maxEvents) this.#flush();
    else this.#schedule();
    return done;
  }

  #schedule(): void {
    if (this.#scheduled || this.#inflight >= this.maxInflight) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#inflight < this.maxInflight) this.#flush();
    });
  }

  #flush(): void {
    const g = this.#pending;
    if (!g) return;
    this.#pending = null;
    this.#inflight++;
    this.queue
      .enqueue(g.perOutput, Date.now())
      .then(
        () => g.waiters.forEach((w) => w.resolve()),
        (err) => {
          const failed = err instanceof QueueUnavailableError ? err.outputs : undefined;
          for (const w of g.waiters) (failed && !w.outputs.some((o) => failed.has(o)) ? w.resolve : w.reject)(err);
        },
      )
      .finally(() => {
        this.#inflight--;
        if (this.#pending) this.#schedule();
      });
  }
}
