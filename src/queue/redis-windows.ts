/**
 * Dedup and throttle windows in Redis, shared by every router on the same prefix, so that two
 * replicas behind one Service let one alert through and send one summary. Semantics as in
 * memory-windows.ts. Keys, under `<prefix>:win:<output>:<kind>:<hash>`:
 *   (the key itself)   the window open now: start, end, n (alerts counted), closer (close job scheduled)
 *   …:<start>:u        that window's alerts: uuid → its number, so a job repeated after a crash or a
 *                      hand-back counts its alerts once; gone a minute after the window's end
 *   …:<start>          what the window held back: held, p:<priority>, first, last, key; with the
 *                      sets …:h (hostnames), …:p (pods), …:r (rules), each at most MAX_LISTED
 *   …:<start>:taken    the same, renamed by the window's close job (with …:taken:h, :p, :r)
 * and `<prefix>:win:<output>:<kind>:open`, the stage's open windows (key hash → end), for the
 * bound MAX_OPEN_WINDOWS; beyond it, new keys share the window whose hash is OVERFLOW_HASH.
 * A window that held nothing expires; one that held something is taken by its close job and
 * deleted once its summary went out. Windows are decided on Redis's clock (TIME), not the
 * caller's: replicas' clocks differ, and a `now` taken before a slow round trip could count an
 * alert into a window another replica has already closed.
 */
import type { Redis } from 'ioredis';
import { MAX_LISTED, MAX_OPEN_WINDOWS, OVERFLOW_HASH, OVERFLOW_KEY } from '../pipeline/summary.ts';
import { PRIORITIES } from '../event/priority.ts';
import type { WindowAggregate, WindowCount, WindowHit, WindowRef } from './types.ts';

/** A window's keys, its alerts' uuids included: gone this long after its end. */
const MARGIN_MS = 60_000;
/** What a window held back, kept past its end for the close job, which may run late (a router down, a backlog). */
const KEEP_MS = 86_400_000;
const HIT_FIELDS = 12;
/** The fields of what a window held back: a fixed few, whatever the number of alerts. */
const HELD_FIELDS = ['held', 'end', 'key', 'first', 'last', ...PRIORITIES.filter((p) => p !== '').map((p) => `p:${p}`)];

/**
 * ARGV: the output's key base, MAX_OPEN_WINDOWS, OVERFLOW_HASH, OVERFLOW_KEY, then HIT_FIELDS per
 * hit. Returns n, start, end, needsClose, counted, hash per hit. `<base>:<kind>:open` scores each
 * open window of a stage by its end, so the bound counts only windows not over.
 */
const COUNT = `
local t = redis.call('TIME')
local now, out = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), {}
local base, cap, overflow = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i = 5, #ARGV, ${HIT_FIELDS} do
  local kind, hash, wms, limit, uuid = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), tonumber(ARGV[i+3]), ARGV[i+4]
  local open = base .. ':' .. kind .. ':open'
  local win = base .. ':' .. kind .. ':' .. hash
  local w = redis.call('HMGET', win, 'start', 'end', 'closer')
  local start, wend, closer = tonumber(w[1]), tonumber(w[2]), w[3]
  if not wend or wend <= now then
    redis.call('ZREMRANGEBYSCORE', open, '-inf', now)
    if redis.call('ZCARD', open) >= cap then
      -- Too many keys with a window open: this one shares the stage's overflow window.
      hash = overflow
      win = base .. ':' .. kind .. ':' .. hash
      w = redis.call('HMGET', win, 'start', 'end', 'closer')
      start, wend, closer = tonumber(w[1]), tonumber(w[2]), w[3]
    end
  end
  if not wend or wend <= now then
    -- A window closed in this same millisecond keeps its start (its close job's ref): the next one starts after.
    start = now
    while redis.call('EXISTS', win .. ':' .. start, win .. ':' .. start .. ':taken') > 0 do start = start + 1 end
    wend, closer = start + wms, '0'
    redis.call('DEL', win)
    redis.call('HSET', win, 'start', start, 'end', wend, 'n', 0, 'closer', 0)
    redis.call('PEXPIRE', win, wms + ${MARGIN_MS})
    if hash ~= overflow then
      redis.call('ZADD', open, wend, hash)
      redis.call('PEXPIRE', open, wms + ${MARGIN_MS})
    end
  end
  local agg = win .. ':' .. start
  local seen = agg .. ':u'
  local n = tonumber(redis.call('HGET', seen, uuid))
  local counted = not n
  if not n then
    n = redis.call('HINCRBY', win, 'n', 1)
    -- One field per alert: of use only while the window is open (a job run again after it ended
    -- counts in a new window), so kept apart from what was held back, which waits a day for
    -- the close job; a flood of held-back alerts would otherwise be kept, and read, that long.
    redis.call('HSET', seen, uuid, n)
    redis.call('PEXPIRE', seen, wend - now + ${MARGIN_MS})
    if n > limit then
      local keep = wend - now + ${KEEP_MS}
      local time, tms = ARGV[i+10], tonumber(ARGV[i+9])
      local held = redis.call('HINCRBY', agg, 'held', 1)
      redis.call('HINCRBY', agg, 'p:' .. ARGV[i+5], 1)
      if held == 1 then
        redis.call('HSET', agg, 'end', wend, 'key', hash == overflow and ARGV[4] or ARGV[i+11], 'first', time, 'firstMs', tms, 'last', time, 'lastMs', tms)
      else
        if tms < tonumber(redis.call('HGET', agg, 'firstMs')) then redis.call('HSET', agg, 'first', time, 'firstMs', tms) end
        if tms > tonumber(redis.call('HGET', agg, 'lastMs')) then redis.call('HSET', agg, 'last', time, 'lastMs', tms) end
      end
      local sets = {{':h', ARGV[i+6]}, {':p', ARGV[i+7]}, {':r', ARGV[i+8]}}
      for _, s in ipairs(sets) do
        if s[2] ~= '' and redis.call('SCARD', agg .. s[1]) < ${MAX_LISTED} then redis.call('SADD', agg .. s[1], s[2]) end
        redis.call('PEXPIRE', agg .. s[1], keep)
      end
      redis.call('PEXPIRE', agg, keep)
    end
  end
  table.insert(out, n)
  table.insert(out, start)
  table.insert(out, wend)
  table.insert(out, (n > limit and closer ~= '1') and 1 or 0)
  table.insert(out, counted and 1 or 0)
  table.insert(out, hash)
end
return out`;

/** Marks a window's close as scheduled, if that window is still the one open. */
const SCHEDULED = "if redis.call('HGET', KEYS[1], 'start') == ARGV[1] then redis.call('HSET', KEYS[1], 'closer', 1) end return 0";

/**
 * The close job's one step. KEYS: the window, its aggregate (…:<start>), the aggregate's taken
 * name, the stage's open windows; ARGV: the window's start, its key hash, then HELD_FIELDS. Ends
 * the window if it is still the one open, so an alert counted after this opens a new window (and
 * schedules its own close) instead of adding to a count nobody will read, and its uuids are of no
 * more use; renames the aggregate to the taken name, which only this window's close job reads. On
 * a repeat of the job the aggregate is already taken (nothing can write it again: its window is
 * over), and the same count is returned again. Reads the named fields only, not the whole hash:
 * an aggregate written by an older router also held a field per alert.
 */
const TAKE = `
if redis.call('HGET', KEYS[1], 'start') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[2])
  redis.call('UNLINK', KEYS[2] .. ':u')
end
for _, s in ipairs({'', ':h', ':p', ':r'}) do
  if redis.call('EXISTS', KEYS[2] .. s) == 1 then redis.call('RENAME', KEYS[2] .. s, KEYS[3] .. s) end
end
return {redis.call('HMGET', KEYS[3], unpack(ARGV, 3)), redis.call('SMEMBERS', KEYS[3] .. ':h'), redis.call('SMEMBERS', KEYS[3] .. ':p'), redis.call('SMEMBERS', KEYS[3] .. ':r')}`;

export class RedisWindows {
  constructor(
    private readonly conn: Redis,
    private readonly prefix: string,
  ) {}

  #base(output: string): string {
    return `${this.prefix}:win:${output}`;
  }

  #agg(output: string, ref: WindowRef): string {
    return `${this.#base(output)}:${ref.kind}:${ref.hash}:${ref.start}`;
  }

  async count(output: string, hits: readonly WindowHit[]): Promise<WindowCount[]> {
    const args = hits.flatMap((h) => [h.kind, h.hash, h.windowMs, h.limit, h.uuid, h.priority, h.hostname, h.pod, h.rule, h.timeMs, h.time, h.key]);
    const out = (await this.conn.eval(COUNT, 0, this.#base(output), MAX_OPEN_WINDOWS, OVERFLOW_HASH, JSON.stringify(OVERFLOW_KEY), ...args)) as Array<number | string>;
    const at = (i: number, k: number) => out[6 * i + k];
    return hits.map((_, i) => ({ n: at(i, 0) as number, start: at(i, 1) as number, end: at(i, 2) as number, needsClose: at(i, 3) === 1, counted: at(i, 4) === 1, hash: at(i, 5) as string }));
  }

  async scheduled(output: string, ref: WindowRef): Promise<void> {
    await this.conn.eval(SCHEDULED, 1, `${this.#base(output)}:${ref.kind}:${ref.hash}`, ref.start);
  }

  async take(output: string, ref: WindowRef): Promise<WindowAggregate | undefined> {
    const agg = this.#agg(output, ref);
    const stage = `${this.#base(output)}:${ref.kind}`;
    const [values, hosts, pods, rules] = (await this.conn.eval(TAKE, 4, `${stage}:${ref.hash}`, agg, `${agg}:taken`, `${stage}:open`, ref.start, ref.hash, ...HELD_FIELDS)) as [Array<string | null>, string[], string[], string[]];
    const hash: Record<string, string> = {};
    for (const [i, f] of HELD_FIELDS.entries()) {
      const v = values[i];
      if (v !== null) hash[f] = v;
    }
    if (!(Number(hash.held) > 0)) return undefined;
    const byPriority: Record<string, number> = {};
    for (const [k, v] of Object.entries(hash)) if (k.startsWith('p:')) byPriority[k.slice(2)] = Number(v);
    return {
      held: Number(hash.held),
      end: Number(hash.end),
      key: JSON.parse(hash.key) as Array<[string, string]>,
      byPriority,
      hostnames: hosts.sort(),
      pods: pods.sort(),
      rules: rules.sort(),
      first: hash.first,
      last: hash.last,
    };
  }

  /**
   * The window a hit would be counted in, without counting anything (route-test): its key's open
   * window, or the stage's overflow window when the key has none and the bound is reached.
   */
  async peek(output: string, hit: Pick<WindowHit, 'kind' | 'hash'>, now: number): Promise<{ n: number; end: number; overflow: boolean } | undefined> {
    const stage = `${this.#base(output)}:${hit.kind}`;
    const read = async (hash: string) => {
      const [end, n] = await this.conn.hmget(`${stage}:${hash}`, 'end', 'n');
      return end !== null && Number(end) > now ? { n: Number(n ?? 0), end: Number(end), overflow: hash === OVERFLOW_HASH } : undefined;
    };
    const own = await read(hit.hash);
    if (own || (await this.conn.zcount(`${stage}:open`, `(${now}`, '+inf')) < MAX_OPEN_WINDOWS) return own;
    return read(OVERFLOW_HASH);
  }

  async drop(output: string, ref: WindowRef): Promise<void> {
    const taken = `${this.#agg(output, ref)}:taken`;
    await this.conn.del(taken, `${taken}:h`, `${taken}:p`, `${taken}:r`);
  }
}
