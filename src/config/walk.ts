/**
 * Reads the config schemas as data: every leaf key with its path, how an environment variable for
 * it is parsed, its type, default and description. The loader derives environment variables and
 * falcosidekick section keys from this, and the reference docs are generated from it, so each key
 * is written once, in its schema.
 */
import type { z } from 'zod';

/** How an env variable's value is read; `none`: the key has no env variable (file only). */
export type EnvKind = 'string' | 'map' | 'list' | 'none';

export interface Field {
  /** Dotted path below the schema walked: `queue.redis.url`. */
  path: string;
  env: EnvKind;
  type: string;
  /** The default as a user would write it; undefined when there is none. */
  default?: unknown;
  required: boolean;
  description: string;
}

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; defaultValue?: unknown; entries?: Record<string, string>; shape?: Record<string, z.ZodType>; element?: z.ZodType };

const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Peels wrappers (default, optional, pipe, …), merging the metadata found on the way. */
function unwrap(schema: z.ZodType): { core: z.ZodType; meta: Record<string, unknown>; default?: unknown; optional: boolean } {
  const meta: Record<string, unknown> = {};
  let s = schema;
  let dflt: unknown;
  let optional = false;
  for (let i = 0; i < 20; i++) {
    for (const [k, v] of Object.entries(s.meta() ?? {})) if (!(k in meta)) meta[k] = v;
    const def = defOf(s);
    if (def.type === 'default' || def.type === 'prefault') {
      if (dflt === undefined) dflt = def.defaultValue;
      s = def.innerType!;
    } else if (def.type === 'optional' || def.type === 'nullable' || def.type === 'readonly' || def.type === 'catch') {
      optional = true;
      s = def.innerType!;
    } else if (def.type === 'pipe') {
      s = def.in!;
    } else break;
  }
  return { core: s, meta, default: dflt, optional };
}

function typeName(core: z.ZodType, meta: Record<string, unknown>): string {
  if (typeof meta.type === 'string') return meta.type;
  const def = defOf(core);
  if (def.type === 'enum') return Object.values(def.entries ?? {}).join(' | ');
  if (def.type === 'record') return 'map';
  if (def.type === 'array') return 'list';
  return def.type;
}

/** True for a nested settings object (its keys are walked); maps and lists are leaves. */
function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const { core } = unwrap(schema);
  const def = defOf(core);
  return def.type === 'object' ? def.shape : undefined;
}

export function fields(schema: z.ZodObject, prefix = ''): Field[] {
  const out: Field[] = [];
  for (const [key, s] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const nested = objectShape(s);
    if (nested) {
      out.push(...fields(unwrap(s).core as z.ZodObject, path));
      continue;
    }
    const u = unwrap(s);
    const env = u.meta.env === 'map' || u.meta.env === 'list' || u.meta.env === 'none' ? u.meta.env : 'string';
    out.push({
      path,
      env,
      type: typeName(u.core, u.meta),
      default: u.default,
      required: u.default === undefined && !u.optional,
      description: (typeof u.meta.description === 'string' ? u.meta.description : '') || (s.description ?? ''),
    });
  }
  return out;
}

/** The environment variable of a key path, falcosidekick's rule: upper case, `.` → `_`. */
export function envName(path: string): string {
  return path.toUpperCase().replace(/\./g, '_');
}
