/**
 * The one Go text/template runtime (falcosidekick users write Go templates: `templatedfields`,
 * Slack's `messageformat`, SNS's `subject`), through @mdfriday/text-template, a TypeScript port of
 * Go's package, with Go's semantics where the port differs:
 * - a missing map key or a null value prints `<no value>` and is false in if/with/and/or/not;
 * - `index` on a map gives `<no value>` for a missing key (the port gives '');
 * - `and`, `or`, `not` use Go's truth, so `{{ or (index .OutputFields "k8s.ns.name") "none" }}` works.
 * Every template sees the same data for an alert: falcosidekick's FalcoPayload (`payloadData`), or,
 * for `templatedfields` as in falcosidekick, the output fields themselves (`fieldsData`).
 */
import { New } from '@mdfriday/text-template';
import { isLosslessNumber, setOwn } from './json.ts';
import type { FalcoEvent } from './falco-event.ts';

class NoValue {
  String(): string {
    return '<no value>';
  }
  toString(): string {
    return '<no value>';
  }
}
const NO_VALUE = new NoValue();

/** Go's truth (text/template isTrue): zero values, empty collections and nil are false. */
function truth(v: unknown): boolean {
  if (v === null || v === undefined || v === NO_VALUE) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v !== '';
  if (isLosslessNumber(v)) return Number(v.value) !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

const GO_FUNCS = new Map<string, unknown>([
  [
    'index',
    (item: unknown, ...keys: unknown[]) => {
      let v: unknown = item;
      for (const k of keys) {
        if (v === null || v === undefined || v === NO_VALUE) throw new Error('index of untyped nil');
        if (Array.isArray(v) || typeof v === 'string') {
          const i = Number(k);
          if (!Number.isInteger(i)) throw new Error(`cannot index slice/array with ${String(k)}`);
          if (i < 0 || i >= v.length) throw new Error(`index out of range: ${i}`);
          v = typeof v === 'string' ? v.charCodeAt(i) : v[i];
        } else if (typeof v === 'object') {
          const key = String(k);
          v = Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
          if (v === undefined || v === null) v = NO_VALUE;
        } else {
          throw new Error(`can't index item of type ${typeof v}`);
        }
      }
      return v;
    },
  ],
  ['or', (...args: unknown[]) => args.find(truth) ?? args[args.length - 1]],
  ['and', (...args: unknown[]) => args.find((a) => !truth(a)) ?? args[args.length - 1]],
  ['not', (v: unknown) => !truth(v)],
]);

/** Numbers as a template sees them: plain numbers when exact, else the LosslessNumber (prints its text). */
function templateValue(v: unknown): unknown {
  if (isLosslessNumber(v)) {
    const n = Number(v.value);
    return String(n) === v.value ? n : v;
  }
  return v;
}

/** Output fields as a Go map: `.key` on a missing or null field prints `<no value>`. */
export function fieldsData(fields: Record<string, unknown>): Record<string, unknown> {
  const target: Record<string, unknown> = {};
  for (const k of Object.keys(fields).sort()) setOwn(target, k, templateValue(fields[k]));
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key !== 'string' || key === 'then' || key in Object.prototype) return Reflect.get(t, key, receiver);
      return Object.hasOwn(t, key) ? (t[key] ?? NO_VALUE) : NO_VALUE;
    },
  });
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * An RFC 3339 time as Go's time.Time.String() prints it after time.Parse: `2001-01-01 01:10:00 +0000 UTC`,
 * `2023-03-03 03:03:03.000000003 +0000 UTC`, and `2019-05-17 17:31:56.5 +0200 +0200` for an offset
 * (an unnamed fixed zone; falcosidekick runs in UTC, so only a zero offset gets the name UTC).
 */
export function goTimeString(time: string): string {
  const m = RFC3339.exec(time);
  if (!m) return time;
  const [, date, clock, frac = '', zone] = m;
  const nanos = frac.slice(0, 9).replace(/0+$/, '');
  const z = zone.toUpperCase() === 'Z' || /^[+-]00:00$/.test(zone) ? '+0000 UTC' : `${zone.replace(':', '')} ${zone.replace(':', '')}`;
  return `${date} ${clock}${nanos ? '.' + nanos : ''} ${z}`;
}

/**
 * The dot of an alert's template: falcosidekick's FalcoPayload field names. A class, not a plain
 * object, so that an unknown field (`.rule`) is an execution error as in Go, not a silent blank.
 */
class FalcoPayloadData {
  readonly Output: string;
  readonly Priority: string;
  readonly Rule: string;
  /** A time.Time in Go: printed as goTimeString does. */
  readonly Time: string;
  readonly OutputFields: Record<string, unknown>;
  readonly Source: string;
  readonly Tags: string[];
  readonly Hostname: string;
  readonly UUID: string;
  constructor(ev: FalcoEvent) {
    this.Output = ev.output;
    this.Priority = ev.priority;
    this.Rule = ev.rule;
    this.Time = goTimeString(ev.time);
    this.OutputFields = fieldsData(ev.output_fields);
    this.Source = ev.source;
    this.Tags = [...ev.tags].sort(); // falcosidekick sorts them (in place) before a template runs
    this.Hostname = ev.hostname;
    this.UUID = ev.uuid;
  }
}

export function payloadData(ev: FalcoEvent): unknown {
  return new FalcoPayloadData(ev);
}

/** A representative alert, to try a template once when its output starts. */
export const SAMPLE_EVENT: FalcoEvent = {
  uuid: '00000000-0000-0000-0000-000000000000',
  output: '15:15:03.434319636: Warning Sensitive file opened for reading (file=/etc/shadow)',
  priority: 'Warning',
  rule: 'Read sensitive file untrusted',
  time: '2025-04-02T15:15:03.434319636Z',
  output_fields: { 'fd.name': '/etc/shadow', 'proc.name': 'cat' },
  source: 'syscall',
  tags: ['filesystem'],
  hostname: 'node-1',
};

const WARN_EVERY_MS = 60_000;

/** A parsed template. JSON shows its source, so configs holding one still print and compare. */
export class GoTemplate {
  readonly #tmpl: { Execute(data: unknown): Promise<[string, unknown]> };
  #warnedAt = 0;
  #failures = 0;

  /** Throws with the parser's message when `source` is not a valid Go template. */
  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    const [tmpl, err] = New(name).Funcs(GO_FUNCS as Map<string, any>).Parse(source);
    if (err || !tmpl) throw new Error(`not a valid Go template: ${String((err as Error)?.message ?? err)}`);
    this.#tmpl = tmpl as unknown as { Execute(data: unknown): Promise<[string, unknown]> };
  }

  async render(data: unknown): Promise<string> {
    const [out, err] = await this.#tmpl.Execute(data);
    if (err) throw new Error(String((err as Error).message ?? err));
    return out;
  }

  /**
   * As falcosidekick: a template that fails on one alert must not lose the alert, so the part is
   * left out ('') and the failure logged, here at most once a minute with the count since.
   */
  async renderOrEmpty(data: unknown, warn: (msg: string, extra: Record<string, unknown>) => void): Promise<string> {
    try {
      return await this.render(data);
    } catch (err) {
      this.#failures++;
      if (Date.now() - this.#warnedAt >= WARN_EVERY_MS) {
        this.#warnedAt = Date.now();
        warn(`template ${this.name} failed, left out: ${(err as Error).message}`, { failures: this.#failures });
        this.#failures = 0;
      }
      return '';
    }
  }

  toJSON(): string {
    return this.source;
  }
}
