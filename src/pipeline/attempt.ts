/**
 * One send of a batch: its own timeout, and the outcome of every event of the batch, whether the
 * adapter resolved, threw, reported per event (SendContext.delivered/failed) or hung. A send that
 * does not end when its signal aborts (a write that cannot be cancelled) is abandoned at the
 * timeout: the pipeline moves on and counts it as failed.
 */
import { HandBack, OutputError } from '../errors.ts';
import type { StoredEvent } from '../event/stored-event.ts';
import type { SendContext } from '../../outputs/sdk/contract.ts';
import type { Clock } from './clock.ts';

export interface Failure {
  events: StoredEvent[];
  error: OutputError;
}

export interface Outcome {
  delivered: StoredEvent[];
  /** Grouped by error, in the order reported. */
  failed: Failure[];
}

export interface AttemptOptions {
  attempt: number;
  timeoutMs: number;
  /** Aborted when the router stops for good: the attempt ends and the batch is handed back. */
  stop: AbortSignal;
  clock: Clock;
  /** Applied once to every error text (the instance's secrets). */
  redact: (e: OutputError) => OutputError;
  /** Called with a send abandoned at its timeout (told to stop, not ended yet), and with its end. */
  abandoned?: (ended: Promise<unknown>) => void;
}

export async function attempt(batch: readonly StoredEvent[], send: (ctx: SendContext) => Promise<void>, o: AttemptOptions): Promise<Outcome> {
  if (o.stop.aborted) throw new HandBack();
  const reported = new Map<StoredEvent, OutputError | null>();
  let open = true;
  const ac = new AbortController();
  const ctx: SendContext = {
    signal: ac.signal,
    attempt: o.attempt,
    delivered: (events) => {
      if (open) for (const e of events) if (!reported.has(e)) reported.set(e, null);
    },
    failed: (events, error) => {
      if (open) for (const e of events) if (!reported.has(e)) reported.set(e, error);
    },
  };
  let timer: unknown;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = o.clock.setTimeout(() => resolve('timeout'), o.timeoutMs);
  });
  let onStop = () => {};
  const stopped = new Promise<'stop'>((resolve) => {
    onStop = () => resolve('stop');
    o.stop.addEventListener('abort', onStop, { once: true });
  });
  let rest: OutputError | null = null;
  // Through a promise, so that a send that throws before returning one is an ordinary failure.
  const sending = Promise.resolve().then(() => send(ctx));
  try {
    const how = await Promise.race([sending.then(() => 'sent' as const), timedOut, stopped]);
    if (how === 'stop') throw new HandBack();
    if (how === 'timeout') {
      rest = new OutputError(`attempt timed out after ${o.timeoutMs} ms`, { reason: 'timeout', retryable: true });
      o.abandoned?.(sending.catch(() => {}));
    }
  } catch (err) {
    if (err instanceof HandBack || o.stop.aborted) throw new HandBack();
    rest = OutputError.from(err);
  } finally {
    open = false;
    o.clock.clearTimeout(timer);
    o.stop.removeEventListener('abort', onStop);
    ac.abort();
  }

  const out: Outcome = { delivered: [], failed: [] };
  const groups = new Map<OutputError, Failure>();
  for (const e of batch) {
    const error = reported.has(e) ? reported.get(e)! : rest;
    if (error === null) {
      out.delivered.push(e);
      continue;
    }
    let g = groups.get(error);
    if (!g) {
      g = { events: [], error: o.redact(error) };
      groups.set(error, g);
      out.failed.push(g);
    }
    g.events.push(e);
  }
  return out;
}
