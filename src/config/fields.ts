/**
 * Zod building blocks shared by the config schema and output schemas. Env values arrive as strings.
 * Each carries `meta({ type })` for the generated reference docs, and `env` for how an environment
 * variable's value is read (`map`: `k:v,k2:v2`, `list`: `a,b`, `none`: no variable, the key is
 * set in the file only); anything else is taken as it is.
 */
import { z } from 'zod';
import { priorityLevel, PRIORITY_CHOICES } from '../event/priority.ts';
import { GoTemplate } from '../event/template.ts';
import { parseMatcher, type Matcher } from '../routing/matcher.ts';

export const bool = z
  .union([
    z.boolean(),
    z
      .string()
      .transform((s) => s.trim().toLowerCase())
      .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }))
      .transform((s) => s === 'true' || s === '1' || s === 'yes'),
  ])
  .meta({ type: 'boolean' });

export const int = (min: number, max: number) =>
  z.coerce
    .number({ message: 'must be a number' })
    .int({ message: 'must be a whole number' })
    .min(min, { message: `must be at least ${min}` })
    .max(max, { message: `must be at most ${max}` })
    .meta({ type: `integer, ${min}–${max}` });

function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

export const httpUrl = z
  .string({ message: 'is required' })
  .superRefine((v, ctx) => {
    if (!isHttpUrl(v)) ctx.addIssue({ code: 'custom', message: 'is not an http(s) URL' });
  })
  .meta({ type: 'URL' });

/** An http(s) URL, or '' for "not set". */
export const optionalHttpUrl = z
  .string()
  .default('')
  .superRefine((v, ctx) => {
    if (v !== '' && !isHttpUrl(v)) ctx.addIssue({ code: 'custom', message: 'is not an http(s) URL' });
  })
  .meta({ type: 'URL' });

/** A map written by users: its keys keep their case (YAML keys elsewhere are case-insensitive). */
export const stringMap = z.record(z.string(), z.coerce.string()).meta({ type: 'map', env: 'map' });

export const stringList = z
  .union([z.array(z.coerce.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))])
  .meta({ type: 'list', env: 'list' });

/** `minimumpriority`: '' means every priority; unlike falcosidekick, a typo is an error. */
export const minimumPriority = z
  .string()
  .default('')
  .superRefine((v, ctx) => {
    if (v !== '' && priorityLevel(v) === 0) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a priority; use one of ${PRIORITY_CHOICES}` });
    }
  })
  .transform((v) => (v === '' ? 0 : priorityLevel(v)))
  .meta({ type: 'priority' });

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `500ms`, `10s`, `5m`, `2h`, `5d` (a bare number is milliseconds) in ms; undefined when it is not
 * a duration. No upper bound: the config builder and the silence API each apply their own.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  return m ? Math.round(Number(m[1]) * UNITS_MS[m[2] ?? 'ms']) : undefined;
}

/** Durations: a number of milliseconds or a string such as `500ms`, `10s`, `5m`, `5d`. */
export const duration = z
  .union([z.number().nonnegative(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') v = `${v}ms`;
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration; write e.g. 500ms, 10s or 5m` });
      return z.NEVER;
    }
    // Timers cannot wait longer (a longer delay would fire at once).
    if (ms > MAX_DURATION_MS) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is too long; at most 24 days (2147483647 ms)` });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ type: 'duration' });

const MAX_DURATION_MS = 2 ** 31 - 1;

const UNITS_B: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** Sizes: a number of bytes or a string such as `100MiB`, `512KiB`. */
export const byteSize = z
  .union([z.number().nonnegative(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(v);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a size; write e.g. 1048576, 512KiB or 100MiB` });
      return z.NEVER;
    }
    return Math.round(Number(m[1]) * UNITS_B[(m[2] ?? 'b').toLowerCase()]);
  })
  .meta({ type: 'size' });

/** A Go text/template ('' for none), parsed at start so a syntax error names the key. */
export const goTemplate = (name: string) =>
  z
    .string()
    .default('')
    .transform((v, ctx): GoTemplate | undefined => {
      if (v === '') return undefined;
      try {
        return new GoTemplate(name, v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .meta({ type: 'Go template' });

/** One matcher, one YAML string (`k8s.ns.name=~"team-a-.*"`), parsed at start so a syntax error names the key and column. */
const matcher = z.string({ message: 'must be a matcher string such as rule="Terminal shell in container"' }).transform((v, ctx): Matcher => {
  try {
    return parseMatcher(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/**
 * A list of matchers that must all hold. Matchers hold quotes, commas and `=`, which no env value
 * format here can carry unambiguously: these keys are set in the file only.
 */
export const matcherList = z.array(matcher, { message: 'must be a list of matcher strings, e.g. [\'k8s.ns.name=~"team-a-.*"\']' }).meta({ type: 'list of matchers', env: 'none' });

/** `exclude`: entries of matchers that all hold (an empty entry would drop every alert, so it is refused). */
export const excludeList = z
  .array(
    z.strictObject(
      {
        matchers: z
          .array(matcher, { error: (iss) => (iss.input === undefined ? 'is required' : 'must be a list of matcher strings') })
          .min(1, { message: 'must list at least one matcher (an entry without any would drop every alert)' }),
        comment: z.string({ message: 'must be a string' }).default(''),
      },
      { message: 'must be an entry such as { matchers: [\'rule="…"\'], comment: "why" }' },
    ),
    { message: 'must be a list of entries such as { matchers: [\'rule="…"\'], comment: "why" }' },
  )
  .meta({ type: 'list of exclude entries', env: 'none' });
