/**
 * `falco-router route-test`, as `amtool config routes test`: one alert read as ingest reads it,
 * routed by the same table, and for each output instance whether it would be sent and why not.
 * Alert values are printed as JSON strings, and everything printed, human or JSON, goes through
 * terminalSafe(): alert values and silences are others' text, and a terminal must not receive
 * their control characters raw.
 */
import type { RouterConfig } from '../config/load.ts';
import { readAlertBody, badBodyText } from '../ingest/alert-body.ts';
import { BadEventError } from '../errors.ts';
import { priorityName } from '../event/priority.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { fieldText } from './matcher.ts';
import type { ExcludeEntry } from './exclude.ts';
import { RoutingTable, type OutputVerdict } from './table.ts';
import { noiseStages, windowHit } from '../pipeline/noise.ts';
import { OVERFLOW_KEY } from '../pipeline/summary.ts';
import { RedisWindows } from '../queue/redis-windows.ts';
import { Redis } from 'ioredis';
import pino from 'pino';
import { MemorySilenceStore, type Silence, type SilenceStore } from './silences.ts';
import { RedisSilenceStore } from './silences-redis.ts';
import { terminalSafe } from './terminal.ts';

export interface RouteTestResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface ExcludeShown {
  scope: 'global' | 'output';
  /** Its key path in the config: `exclude[1]`, `outputs[3].exclude[0]`. */
  key: string;
  index: number;
  comment: string;
  matchers: string[];
}

interface OutputShown {
  name: string;
  type: string;
  sent: boolean;
  reason?: string;
  /** reason priority */
  minimumpriority?: string;
  /** reason match: the first matcher that does not hold, its index in `match`, and what the alert has in its field. */
  matcher?: string;
  index?: number;
  field?: string;
  value?: string | readonly string[];
  /** reason exclude */
  exclude?: ExcludeShown;
  /** reason silence */
  silence?: SilenceShown;
  /** Sent: what its dedup and throttle would do with this alert now. */
  noise?: NoiseShown[];
}

interface NoiseShown {
  kind: 'dedup' | 'throttle';
  window: string;
  /** Alerts per key and window sent one by one. */
  max: number;
  /** Where the windows were read: `process` when they live only in the router's (memory driver), `unreachable` when Redis could not be read. */
  windows: 'redis' | 'process' | 'unreachable';
  /** Read from Redis: alerts counted in this alert's window so far, and when it ends (absent: no window open). */
  counted?: number;
  until?: string;
  /** Set when that window is the overflow window (the output has too many keys with a window open). */
  overflow?: true;
  /** Whether this alert would be held back; absent when the windows could not be read. */
  heldBack?: boolean;
}

interface SilenceShown {
  id: string;
  matchers: string[];
  endsAt: string;
  comment: string;
  createdBy: string;
}

/** Where route-test read the silences from: `process` when they live only in the router's, `unreachable` when Redis could not be read. */
type SilencesSource = 'redis' | 'file' | 'process' | 'unreachable';

const LONG = 200;

export async function routeTest(body: string, cfg: RouterConfig, opts: { json?: boolean } = {}): Promise<RouteTestResult> {
  const r = await explain(body, cfg, opts);
  return { code: r.code, stdout: terminalSafe(r.stdout), stderr: terminalSafe(r.stderr) };
}

async function explain(body: string, cfg: RouterConfig, opts: { json?: boolean }): Promise<RouteTestResult> {
  const warnings: string[] = [];
  let ev: FalcoEvent;
  try {
    ({ event: ev } = await readAlertBody(body, '', cfg, (msg, extra) => warnings.push(`warning: ${msg}${extra ? ` ${JSON.stringify(extra)}` : ''}`)));
  } catch (err) {
    if (err instanceof BadEventError) return { code: 1, stdout: '', stderr: badBodyText(err) };
    throw err;
  }
  const redis = cfg.queue.driver === 'redis' ? await connect(cfg) : undefined;
  try {
    const silences = await storedSilences(cfg, redis).catch(() => undefined);
    const table = new RoutingTable(cfg.outputs, cfg.exclude);
    const why = table.explain(ev, silences);
    const outputs = why.outputs.map((v, i) => shownVerdict(v, cfg.outputs[i]?.type ?? '', ev, silences));
    await addNoise(outputs, cfg, ev, redis);
    await silences?.close();
    const source: SilencesSource = cfg.queue.driver === 'redis' ? (silences ? 'redis' : 'unreachable') : silences ? 'file' : 'process';
    const globalExclude = why.globalExclude ? shownExclude('global', 'exclude', why.globalExclude.index, why.globalExclude.entry) : null;
    const stderr = warnings.map((w) => `${w}\n`).join('');
    if (opts.json) {
      const alert = { rule: ev.rule, priority: ev.priority, source: ev.source, hostname: ev.hostname };
      return { code: 0, stdout: JSON.stringify({ alert, test: why.test, globalExclude, silences: source, outputs }, null, 2) + '\n', stderr };
    }
    return { code: 0, stdout: human(ev, why.test, globalExclude, source, outputs), stderr };
  } finally {
    redis?.disconnect();
  }
}

/** The queue's Redis, or undefined when it cannot be reached (route-test then says what it could not read). */
async function connect(cfg: RouterConfig): Promise<Redis | undefined> {
  const redis = new Redis(cfg.queue.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
  redis.on('error', () => {});
  return redis.connect().then(
    () => redis,
    () => undefined,
  );
}

/** The silences as the router applies them, read without writing anything; undefined where route-test cannot see them. */
async function storedSilences(cfg: RouterConfig, redis: Redis | undefined): Promise<SilenceStore | undefined> {
  const o = { retentionMs: cfg.silences.retention, logger: pino({ level: 'silent' }), readOnly: true };
  let store: SilenceStore;
  if (redis) store = new RedisSilenceStore(redis, cfg.queue.redis.prefix, o);
  else if (cfg.queue.driver === 'memory' && cfg.silences.path !== '') store = new MemorySilenceStore({ ...o, path: cfg.silences.path });
  else return undefined;
  await store.start();
  return store;
}

function shownVerdict(v: OutputVerdict, type: string, ev: FalcoEvent, silences: SilenceStore | undefined): OutputShown {
  const o: OutputShown = { name: v.output.name, type, sent: v.sent };
  if (v.reason === undefined) return o;
  o.reason = v.reason;
  if (v.reason === 'priority') o.minimumpriority = priorityName(v.output.minimumpriority);
  if (v.failed) {
    o.matcher = String(v.failed.matcher);
    o.index = v.failed.index;
    o.field = v.failed.matcher.name;
    o.value = fieldText(ev, v.failed.matcher.name);
  }
  if (v.silence !== undefined) {
    const { id, matchers, endsAt, comment, createdBy } = silences!.silencedBy(ev, v.output.name) as Silence;
    o.silence = { id, matchers, endsAt, comment, createdBy };
  }
  if (v.excludedBy) {
    const { scope, index, entry } = v.excludedBy;
    o.exclude = shownExclude(scope, scope === 'global' ? 'exclude' : `${v.output.origin ?? v.output.name}.exclude`, index, entry);
  }
  return o;
}

/** Dedup and throttle state of the outputs the alert goes to; read from Redis when it holds the windows. */
async function addNoise(outputs: OutputShown[], cfg: RouterConfig, ev: FalcoEvent, redis: Redis | undefined): Promise<void> {
  const withNoise = cfg.outputs.filter((o, i) => outputs[i].sent && noiseStages(o).length > 0);
  const windows = redis && new RedisWindows(redis, cfg.queue.redis.prefix);
  const where = cfg.queue.driver === 'memory' ? 'process' : windows ? 'redis' : 'unreachable';
  const now = Date.now();
  for (const inst of withNoise) {
    const shown = outputs.find((o) => o.name === inst.name)!;
    shown.noise = [];
    for (const stage of noiseStages(inst)) {
      const n: NoiseShown = { kind: stage.kind, window: `${stage.windowMs / 1000} s`, max: stage.limit, windows: where };
      // A read that fails is not "no window open": it says so instead of guessing.
      const read = windows && (await windows.peek(inst.name, windowHit(stage, ev), now).then((open) => ({ open }), () => undefined));
      if (windows && !read) n.windows = 'unreachable';
      if (read) {
        n.counted = read.open?.n ?? 0;
        if (read.open) n.until = new Date(read.open.end).toISOString();
        if (read.open?.overflow) n.overflow = true;
        n.heldBack = (read.open?.n ?? 0) + 1 > stage.limit;
      }
      shown.noise.push(n);
    }
  }
}

function shownExclude(scope: 'global' | 'output', at: string, index: number, entry: ExcludeEntry): ExcludeShown {
  return { scope, key: `${at}[${index}]`, index, comment: entry.comment, matchers: entry.matchers.map(String) };
}

const SOURCE_TEXT: Record<SilencesSource, string> = {
  redis: 'silences: read from Redis',
  file: 'silences: read from silences.path',
  process: "silences: kept in the router's process (memory queue without silences.path); route-test cannot see them",
  unreachable: 'silences: Redis could not be read; route-test cannot see them',
};

function human(ev: FalcoEvent, test: boolean, globalExclude: ExcludeShown | null, source: SilencesSource, outputs: OutputShown[]): string {
  const lines = [`alert: rule ${quoted(ev.rule)}, priority ${ev.priority}, source ${quoted(ev.source)}, hostname ${quoted(ev.hostname)}`];
  if (test) lines.push('"Test rule" reaches every output: minimumpriority, match, exclude and silences do not apply to it.');
  else lines.push(globalExclude ? `global exclude: ${describeExclude(globalExclude)}` : 'global exclude: no entry matches', SOURCE_TEXT[source]);
  lines.push('');
  const width = Math.max(...outputs.map((o) => `${o.name} (${o.type})`.length), 0);
  for (const o of outputs) {
    lines.push(`${`${o.name} (${o.type})`.padEnd(width)}  ${o.sent ? 'sent' : `not sent: ${reasonText(o, ev)}`}`);
    for (const n of o.noise ?? []) lines.push(`${' '.repeat(width)}    ${noiseText(n)}`);
  }
  const sent = outputs.filter((o) => o.sent).length;
  lines.push('', `sent to ${sent} of ${outputs.length} output${outputs.length === 1 ? '' : 's'}`);
  return lines.join('\n') + '\n';
}

function reasonText(o: OutputShown, ev: FalcoEvent): string {
  if (o.reason === 'priority') return `priority ${ev.priority} is below its minimumpriority ${o.minimumpriority}`;
  if (o.reason === 'match') return `match[${o.index}] ${o.matcher} does not hold (${readsAs(o.field!, o.value!)})`;
  if (o.reason === 'exclude') return o.exclude!.scope === 'global' ? `global ${o.exclude!.key} matches` : describeExclude(o.exclude!);
  if (o.reason === 'silence') {
    const s = o.silence!;
    return `silence ${s.id} (${quoted(s.comment)}, by ${quoted(s.createdBy)}, until ${s.endsAt}) matches: ${s.matchers.join(', ')}`;
  }
  return o.reason ?? '';
}

function noiseText(n: NoiseShown): string {
  const what = `${n.kind} (${n.max} per key per ${n.window})`;
  if (n.windows === 'unreachable') return `${what}: Redis could not be read; route-test cannot see its windows`;
  if (n.windows === 'process') return `${what}: its windows are in the router's process (memory queue); route-test cannot see them`;
  const where = n.overflow ? `the overflow window (${OVERFLOW_KEY[0][1]})` : "this key's window";
  const state = n.until ? `${n.counted} counted in ${where} until ${n.until}` : "no window open for this key";
  return `${what}: ${state}; this alert would be ${n.heldBack ? 'held back for the summary' : 'sent'}`;
}

function describeExclude(e: ExcludeShown): string {
  return `${e.key}${e.comment ? ` (${e.comment})` : ''} matches: ${e.matchers.join(', ')}`;
}

function readsAs(name: string, value: string | readonly string[]): string {
  if (typeof value !== 'string') return value.length === 0 ? 'the alert has no tags' : `tags are ${value.map(quoted).join(', ')}`;
  return value === '' ? `${name} is empty or missing` : `${name} is ${quoted(value)}`;
}

function quoted(s: string): string {
  return JSON.stringify(s.length > LONG ? `${s.slice(0, LONG)}…` : s);
}
