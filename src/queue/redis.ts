/**
 * BullMQ on Redis: one queue per output instance (`<prefix>:out.<name>`), durable and shared by
 * every router process on the same Redis and prefix. A group of events for several outputs is
 * written as one job per output, pipelined, so ingest pays one round trip per group.
 */
import { randomUUID } from 'node:crypto';
import { Queue, Worker, DelayedError, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RepeatLimiter } from '../log.ts';
import { HandBack, QueueUnavailableError } from '../errors.ts';
import type { Consumer, DeadLetter, JobHandler, QueueDriver, QueueJob, WindowHit, WindowRef } from './types.ts';
import { RedisWindows } from './redis-windows.ts';

export interface RedisQueueOptions {
  url: string;
  prefix: string;
  lockDuration: number;
  stalledInterval: number;
  /** How often each consumed output's depth counter is checked against its jobs. */
  depthCheckInterval: number;
  logger: Logger;
}

interface JobData {
  /** Event JSON strings. */
  e: string[];
  /** Accepted at, epoch ms. */
  t: number;
  /** Set instead of events on a job that closes a dedup or throttle window. */
  c?: WindowRef;
}

interface Progress {
  d: number;
  a: number;
}

const JOB_OPTS = { removeOnComplete: true, removeOnFail: false } as const;
/** Above this many jobs, a depth check waits for the queue to shrink (the script blocks Redis while it counts). */
const MAX_COUNTED_JOBS = 1000;
/**
 * The true depth of an output, from its jobs: events of every job not finished, less those its
 * progress says went out. Returns {counter, truth}, or {counter, -1} when the queue holds more than
 * ARGV[1] jobs. KEYS: the queue's key base, the counter. Jobs added before names carried the count
 * are read from their data.
 */
const DEPTH_FROM_JOBS = `
local base, total, jobs = KEYS[1], 0, 0
local lists, sets = {'wait', 'active', 'paused'}, {'delayed', 'prioritized', 'waiting-children'}
for _, l in ipairs(lists) do jobs = jobs + redis.call('LLEN', base .. ':' .. l) end
for _, z in ipairs(sets) do jobs = jobs + redis.call('ZCARD', base .. ':' .. z) end
local counter = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if jobs > tonumber(ARGV[1]) then return {counter, -1} end
local function count(ids)
  for _, id in ipairs(ids) do
    local key = base .. ':' .. id
    local f = redis.call('HMGET', key, 'name', 'progress')
    local n = tonumber(f[1])
    if not n and f[1] then
      local ok, data = pcall(cjson.decode, redis.call('HGET', key, 'data') or '{}')
      n = ok and type(data.e) == 'table' and #data.e or 0
    end
    if n then
      local done = 0
      if f[2] then
        local ok, p = pcall(cjson.decode, f[2])
        if ok and type(p) == 'table' and tonumber(p.d) then done = tonumber(p.d) end
      end
      total = total + math.max(0, n - done)
    end
  end
end
for _, l in ipairs(lists) do count(redis.call('LRANGE', base .. ':' .. l, 0, -1)) end
for _, z in ipairs(sets) do count(redis.call('ZRANGE', base .. ':' .. z, 0, -1)) end
return {counter, total}`;
/** A re-queue holds its output's lock at most this long (a crashed holder's lock expires). */
const REQUEUE_LOCK_MS = 60_000;
const REQUEUE_LOCK_WAIT_MS = 30_000;
/** Deletes the lock only if it is still ours. */
const RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

export class RedisQueue implements QueueDriver {
  readonly kind = 'redis' as const;
  /** Ingest and admin commands: fail fast while Redis is away, so ingest can answer 503. */
  readonly #conn: Redis;
  /** Workers: retry for ever, as BullMQ requires. */
  readonly #workerConn: Redis;
  readonly #queues = new Map<string, Queue>();
  readonly #workers = new Set<Worker>();

  readonly #repeats: RepeatLimiter;
  readonly #windows: RedisWindows;
  /** The last difference between an output's depth counter and its jobs. */
  readonly #depthDiff = new Map<string, number>();

  private constructor(private readonly o: RedisQueueOptions) {
    this.#repeats = new RepeatLimiter(o.logger);
    const onError = (what: string) => (err: Error) => this.#repeats.log('warn', { err: err.message }, `redis ${what} connection: ${err.message}`);
    this.#conn = new Redis(o.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: 5000,
      retryStrategy: (n) => Math.min(n * 200, 2000),
      lazyConnect: true,
    });
    this.#conn.on('error', onError('ingest'));
    this.#windows = new RedisWindows(this.#conn, o.prefix);
    this.#workerConn = new Redis(o.url, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 200, 2000), lazyConnect: true });
    this.#workerConn.on('error', onError('worker'));
  }

  /** Connects, failing with a clear message when Redis cannot be reached. */
  static async connect(o: RedisQueueOptions): Promise<RedisQueue> {
    const q = new RedisQueue(o);
    try {
      await Promise.all([whenReady(q.#conn), whenReady(q.#workerConn)]);
    } catch (err) {
      q.#conn.disconnect();
      q.#workerConn.disconnect();
      throw new QueueUnavailableError(`cannot connect to Redis at ${redactRedisUrl(o.url)} (queue.redis.url): ${(err as Error).message}`);
    }
    return q;
  }

  /** The connection of ingest and admin commands (they fail fast while Redis is away); the silence store shares it. */
  get commands(): Redis {
    return this.#conn;
  }

  #queueName(output: string): string {
    return `out.${output}`;
  }

  #depthKey(output: string): string {
    return `${this.o.prefix}:depth:${output}`;
  }

  #dlqKey(output: string): string {
    return `${this.o.prefix}:dlq:${output}`;
  }

  #queue(output: string): Queue {
    let q = this.#queues.get(output);
    if (!q) {
      q = new Queue(this.#queueName(output), { connection: this.#conn, prefix: this.o.prefix });
      q.on('error', (err) => this.#repeats.log('warn', { err: err.message }, `redis queue error: ${err.message}`));
      this.#queues.set(output, q);
    }
    return q;
  }

  async enqueue(perOutput: ReadonlyMap<string, readonly string[]>, acceptedAt: number): Promise<void> {
    if (this.#conn.status !== 'ready') throw new QueueUnavailableError(`Redis is not reachable (connection ${this.#conn.status})`);
    // Depth is a gauge for operators and flood control, kept beside the jobs. It is counted in
    // the same round trip as the writes (never after a job exists, so a fast worker cannot take
    // it below zero) and taken back for the outputs whose write failed.
    // Plain commands, not a pipeline: ioredis sends them without waiting for replies anyway, and a
    // pipeline on this connection copies every BullMQ script onto itself (3 % of ingest CPU).
    const counted = Promise.all([...perOutput].map(([output, events]) => this.#conn.incrby(this.#depthKey(output), events.length))).then(
      () => true,
      () => false,
    );
    // One job per output, pipelined on one connection: one round trip for the group. A
    // FlowProducer MULTI would make the group all-or-nothing across outputs, but costs 1.6× the
    // client CPU (measured: 1,050 against 639 µs for five 25-event jobs), and a group that fails
    // part way is answered 503 either way.
    const entries = [...perOutput];
    // The job's name is its number of events, so the depth check can count them without reading the data.
    const results = await Promise.allSettled(entries.map(([output, events]) => this.#queue(output).add(String(events.length), { e: events as string[], t: acceptedAt } satisfies JobData, JOB_OPTS)));
    const failed = entries.filter((_, i) => results[i].status === 'rejected');
    if (failed.length > 0) {
      if (await counted) await Promise.all(failed.map(([output, events]) => this.#conn.decrby(this.#depthKey(output), events.length))).catch(() => {});
      const reason = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as Error;
      const stored = entries.length - failed.length;
      throw new QueueUnavailableError(`Redis did not store the events: ${reason.message}${stored > 0 ? ` (stored for ${stored} of ${entries.length} outputs)` : ''}`, new Set(failed.map(([o]) => o)));
    }
    await counted;
  }

  /** Each window remembers the uuids it counted, in Redis, so a job needs no memory of its own. */
  countInWindows(output: string, hits: readonly WindowHit[]) {
    return this.#windows.count(output, hits);
  }

  /**
   * A delayed job whose id is the window's, so that scheduling one window twice adds one job. Its
   * delay is reckoned on this host's clock, the window's end on Redis's: a close job that runs a
   * little early ends its window early (closeWindow is atomic), and nothing held back is lost.
   */
  async scheduleClose(output: string, ref: WindowRef, at: number): Promise<void> {
    const jobId = `close-${ref.kind}-${ref.hash}-${ref.start}`;
    await this.#queue(output).add('close', { e: [], t: Date.now(), c: ref } satisfies JobData, { ...JOB_OPTS, jobId, delay: Math.max(0, at - Date.now()) });
    await this.#windows.scheduled(output, ref);
  }

  closeWindow(output: string, ref: WindowRef) {
    return this.#windows.take(output, ref);
  }

  dropWindow(output: string, ref: WindowRef): Promise<void> {
    return this.#windows.drop(output, ref);
  }

  consume(output: string, concurrency: number, handler: JobHandler): Consumer {
    const abort = new AbortController();
    const processor = async (job: Job<JobData>, token?: string): Promise<void> => {
      const prog = (typeof job.progress === 'object' ? job.progress : {}) as Partial<Progress>;
      let done = prog.d ?? 0;
      const handle: QueueJob = {
        id: job.id ?? '',
        output,
        events: job.data.e,
        done,
        attempts: prog.a ?? 0,
        acceptedAt: job.data.t,
        close: job.data.c,
        progress: async (d, a) => {
          await job.updateProgress({ d, a } satisfies Progress);
          await this.#conn.decrby(this.#depthKey(output), d - done).catch(() => {});
          done = d;
        },
      };
      try {
        await handler(handle, abort.signal);
        await this.#conn.decrby(this.#depthKey(output), job.data.e.length - done).catch(() => {});
      } catch (err) {
        // Back to the queue, never to BullMQ's failed set: dead-lettering is the delivery worker's call.
        // A short delay on hand-back keeps a closing worker from fetching the same job straight back.
        const delay = err instanceof HandBack ? 500 : 1000;
        if (!(err instanceof HandBack)) this.o.logger.error({ err: (err as Error).message, output }, 'delivery handler failed');
        await job.moveToDelayed(Date.now() + delay, token);
        throw new DelayedError();
      }
    };
    const worker = new Worker<JobData>(this.#queueName(output), processor, {
      connection: this.#workerConn,
      prefix: this.o.prefix,
      concurrency,
      lockDuration: this.o.lockDuration,
      stalledInterval: this.o.stalledInterval,
      // A job whose holder died is always taken over, never failed: at-least-once delivery.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
      removeOnComplete: { count: 0 },
    });
    worker.on('error', (err) => this.#repeats.log('warn', { err: err.message, output }, `redis worker error (output ${output}): ${err.message}`));
    this.#workers.add(worker);
    const check = () => void this.#checkDepth(output);
    check();
    const checks = setInterval(check, this.o.depthCheckInterval).unref();
    return {
      stop: async (graceMs: number) => {
        clearInterval(checks);
        const timer = setTimeout(() => abort.abort(), graceMs);
        try {
          await worker.close();
        } finally {
          clearTimeout(timer);
          this.#workers.delete(worker);
        }
      },
    };
  }

  /**
   * The depth counter is kept beside the jobs for speed, and a fault can leave it wrong for good (a
   * write that failed after it was counted, a process killed between a delivery and its count, a
   * Redis that lost one but not the other). It is checked against the jobs at start and then
   * periodically, and corrected (relatively, so concurrent writes are not lost) when the same
   * difference is seen twice in a row: a write in flight between its count and its job makes a
   * difference that is gone by the next check. While the queue holds more than MAX_COUNTED_JOBS
   * jobs the check waits, so that it never blocks Redis for long.
   */
  async #checkDepth(output: string): Promise<void> {
    try {
      const [counter, truth] = (await this.#conn.eval(DEPTH_FROM_JOBS, 2, `${this.o.prefix}:${this.#queueName(output)}`, this.#depthKey(output), MAX_COUNTED_JOBS)) as [number, number];
      const diff = truth < 0 ? 0 : counter - truth;
      if (diff !== 0 && this.#depthDiff.get(output) === diff) {
        await this.#conn.decrby(this.#depthKey(output), diff);
        this.o.logger.info({ output, before: counter, after: truth }, `queue depth of output ${output} corrected from ${counter} to ${truth} (counted from its jobs)`);
        this.#depthDiff.delete(output);
      } else this.#depthDiff.set(output, diff);
    } catch (err) {
      this.#repeats.log('warn', { output, err: (err as Error).message }, `could not check the queue depth of output ${output}: ${(err as Error).message}`);
    }
  }

  async deadLetter(entries: readonly Omit<DeadLetter, 'id'>[]): Promise<void> {
    const p = this.#workerConn.pipeline();
    for (const e of entries) {
      const id = randomUUID();
      p.hset(this.#dlqKey(e.output), id, JSON.stringify({ id, ...e }));
    }
    const results = await p.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async listDeadLetters(output: string, limit = 1000): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    let cursor = '0';
    do {
      const [next, kv] = await this.#conn.hscan(this.#dlqKey(output), cursor, 'COUNT', 500);
      for (let i = 1; i < kv.length && out.length < limit; i += 2) out.push(JSON.parse(kv[i]) as DeadLetter);
      cursor = next;
    } while (cursor !== '0' && out.length < limit);
    return out.sort((a, b) => a.failedAt.localeCompare(b.failedAt));
  }

  /**
   * List, enqueue, delete, under a lock per output, so that two calls at once (or two replicas)
   * never enqueue the same dead letter twice. Enqueued before deleted: a crash in between repeats a
   * dead letter on the next re-queue (at-least-once), it never loses one.
   */
  async requeueDeadLetters(output: string, ids?: readonly string[]): Promise<number> {
    const lock = `${this.o.prefix}:dlq-lock:${output}`;
    const token = randomUUID();
    for (const end = Date.now() + REQUEUE_LOCK_WAIT_MS; (await this.#conn.set(lock, token, 'PX', REQUEUE_LOCK_MS, 'NX')) !== 'OK'; ) {
      if (Date.now() > end) throw new QueueUnavailableError(`another re-queue of output "${output}" is still running`);
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      return await this.#requeue(output, ids);
    } finally {
      await this.#conn.eval(RELEASE_LOCK, 1, lock, token).catch(() => {});
    }
  }

  async #requeue(output: string, ids?: readonly string[]): Promise<number> {
    const chosen = ids
      ? ((await this.#conn.hmget(this.#dlqKey(output), ...ids)).filter((v): v is string => v !== null).map((v) => JSON.parse(v) as DeadLetter))
      : await this.listDeadLetters(output, Number.MAX_SAFE_INTEGER);
    if (chosen.length === 0) return 0;
    await this.enqueue(new Map([[output, chosen.map((d) => d.event)]]), Date.now());
    await this.#conn.hdel(this.#dlqKey(output), ...chosen.map((d) => d.id));
    return chosen.length;
  }

  async depth(output: string): Promise<number> {
    return Math.max(0, Number((await this.#conn.get(this.#depthKey(output))) ?? 0));
  }

  async deadLetterCount(output: string): Promise<number> {
    return this.#conn.hlen(this.#dlqKey(output));
  }

  ready(): boolean {
    return this.#conn.status === 'ready';
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#workers].map((w) => w.close()));
    await Promise.allSettled([...this.#queues.values()].map((q) => q.close()));
    this.#conn.disconnect();
    this.#workerConn.disconnect();
  }
}

/** Connects if nobody has yet (BullMQ may already have started it), and waits for ready. */
async function whenReady(conn: Redis, timeoutMs = 5000): Promise<void> {
  if (conn.status === 'wait') conn.connect().catch(() => {});
  if (conn.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => (lastError = err);
    const done = (err?: Error) => {
      clearTimeout(timer);
      conn.off('ready', onReady);
      conn.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(() => done(lastError ?? new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    conn.on('ready', onReady);
    conn.on('error', onError);
  });
}

export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '***';
  }
}
