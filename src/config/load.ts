/**
 * Config = built-in defaults < YAML file < environment variables, with falcosidekick's key names,
 * env naming (key path upper-cased, `.` → `_`) and `k:v,k2:v2` maps. Which keys exist, and how an
 * env value is read, comes from the schemas (walk.ts). Everything is validated here, at start, and
 * every error names the key path.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { globalSchema, instanceSchema, type GlobalConfig, type DeliverySettings } from './schema.ts';
import { fields, envName, type EnvKind } from './walk.ts';
import { FALCOSIDEKICK_SECTIONS } from './falcosidekick.ts';
import type { OutputType } from '../../outputs/sdk/contract.ts';
import { GoTemplate } from '../event/template.ts';
import { priorityName } from '../event/priority.ts';
import { ConfigError } from '../errors.ts';

export { ConfigError };

export interface OutputInstance {
  name: string;
  type: string;
  /** Where it was configured, for messages: `outputs[2]` or `webhook`. */
  origin: string;
  minimumpriority: number;
  delivery: Required<DeliverySettings>;
  /** Noise control in the pipeline; absent when off. */
  dedup?: { window: number; key?: string[] };
  throttle?: { window: number; max: number; key?: string[] };
  settings: Record<string, unknown>;
}

export interface RouterConfig extends Omit<GlobalConfig, 'outputs' | 'templatedfields'> {
  templatedfields: Record<string, GoTemplate>;
  outputs: OutputInstance[];
  /** True when no output was configured and the embedded file output is used. */
  usingDefaultOutput: boolean;
  /** Things worth a log line at start (settings we ignore). */
  warnings: string[];
}


type Env = Record<string, string | undefined>;
type Raw = Record<string, unknown>;
type Types = readonly OutputType[];

const GLOBAL_KEYS = fields(globalSchema).filter((f) => f.path !== 'outputs');
const INSTANCE_KEYS = Object.keys(instanceSchema.shape);
/** Keys of an instance a falcosidekick section may set besides its type's own. */
const SECTION_COMMON = fields(instanceSchema.omit({ name: true, type: true }));

/** `defaultOutput`: the instance run when none is configured (the registry's embedded default). */
export function loadConfig(opts: { file?: string; env?: Env; types: Types; defaultOutput?: Raw }): RouterConfig {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const warnings: string[] = [];
  const mapKeys = new Set([GLOBAL_KEYS, ...opts.types.map((t) => fields(t.schema))].flat().filter((f) => f.env === 'map').map((f) => f.path.split('.').pop()!));
  const raw: Raw = opts.file ? readYaml(opts.file, mapKeys) : {};

  for (const f of GLOBAL_KEYS) applyEnv(raw, f.path, f.env, env, problems);
  const outputsRaw = Array.isArray(raw.outputs) ? (raw.outputs as unknown[]) : raw.outputs === undefined ? [] : null;
  if (outputsRaw === null) problems.push('outputs: must be a list of output instances');

  const instances: Array<{ raw: Raw; origin: string; lenient: boolean }> = (outputsRaw ?? []).map((o, i) => ({
    raw: (o && typeof o === 'object' ? o : { invalid: o }) as Raw,
    origin: `outputs[${i}]`,
    lenient: false,
  }));

  // falcosidekick's one-instance-per-type sections: `webhook.address`, `slack.webhookurl`, …
  const supported = new Set<string>();
  for (const t of opts.types) {
    const fk = t.falcosidekick;
    if (!fk) continue;
    supported.add(fk.prefix);
    const own = [...fields(t.schema), ...SECTION_COMMON];
    for (const f of own) applyEnv(raw, `${fk.prefix}.${f.path}`, f.env, env, problems);
    const shared = fk.shared ? fields(fk.shared.schema) : [];
    for (const f of shared) applyEnv(raw, `${fk.shared!.prefix}.${f.path}`, f.env, env, problems);
    const section = getPath(raw, fk.prefix);
    if (!enabled(section, [fk.enabledBy])) continue;
    const settings = { ...pick(getPath(raw, fk.shared?.prefix ?? ''), shared), ...pick(section, own) };
    instances.push({ raw: { ...settings, name: t.type, type: t.type }, origin: fk.prefix, lenient: true });
  }
  for (const [section, enabledBy] of FALCOSIDEKICK_SECTIONS) {
    if (supported.has(section)) continue;
    if (enabled(getPath(raw, section), enabledBy)) warnings.push(`${section}: falcosidekick output not supported by this router; its alerts go nowhere (the section is ignored)`);
    for (const key of enabledBy) {
      const name = envName(`${section}.${key}`);
      if (nonEmpty(env[name])) warnings.push(`${name}: falcosidekick output ${section} is not supported by this router; ignored`);
    }
  }
  // Sections are read; what remains at the top level must be a global setting.
  for (const section of [...supported, ...FALCOSIDEKICK_SECTIONS.map(([s]) => s)]) delete raw[section.split('.')[0]];

  const global = globalSchema.safeParse({ ...raw, outputs: [] });
  if (!global.success) problems.push(...formatIssues(global.error, ''));

  const templatedfields: Record<string, GoTemplate> = {};
  if (global.success) {
    for (const [k, src] of Object.entries(global.data.templatedfields)) {
      try {
        templatedfields[k] = new GoTemplate(k, src);
      } catch (err) {
        problems.push(`templatedfields.${k}: ${(err as Error).message}`);
      }
    }
  }

  const outputs: OutputInstance[] = [];
  const names = new Map<string, string>();
  let usingDefaultOutput = false;
  if (instances.length === 0 && opts.defaultOutput) {
    usingDefaultOutput = true;
    instances.push({ raw: { ...opts.defaultOutput }, origin: 'default output', lenient: false });
  }
  for (const inst of instances) {
    const out = validateInstance(inst.raw, inst.origin, inst.lenient, opts.types, problems);
    if (!out) continue;
    const seen = names.get(out.name);
    if (seen) problems.push(`${inst.origin}.name: "${out.name}" is already used by ${seen}; output names must be unique`);
    names.set(out.name, inst.origin);
    outputs.push(out);
  }

  if (problems.length > 0 || !global.success) throw new ConfigError(problems);
  return { ...global.data, templatedfields, outputs, usingDefaultOutput, warnings };
}

function validateInstance(raw: Raw, origin: string, lenient: boolean, types: Types, problems: string[]): OutputInstance | undefined {
  const common = instanceSchema.safeParse(raw);
  if (!common.success) problems.push(...formatIssues(common.error, origin));
  const type = types.find((t) => t.type === raw.type);
  if (!type) {
    if (typeof raw.type === 'string') problems.push(`${origin}.type: "${raw.type}" is not an output type; use one of ${types.map((t) => t.type).join(', ')}`);
    return undefined;
  }
  const rest: Raw = {};
  for (const [k, v] of Object.entries(raw)) if (!INSTANCE_KEYS.includes(k)) rest[k] = v;
  // falcosidekick sections keep working when they hold keys we do not support; native config must be exact.
  const settings = (lenient ? type.schema : type.schema.strict()).safeParse(rest);
  if (!settings.success) problems.push(...formatIssues(settings.error, origin));
  if (!common.success || !settings.success) return undefined;
  const d = common.data.delivery;
  const t = type.defaults;
  if (d.maxbatch !== undefined && t.maxBatchLimit !== undefined && d.maxbatch > t.maxBatchLimit) {
    problems.push(`${origin}.delivery.maxbatch: ${type.type} makes one call per alert; it must be at most ${t.maxBatchLimit}`);
    return undefined;
  }
  return {
    name: common.data.name,
    type: type.type,
    origin,
    minimumpriority: common.data.minimumpriority,
    dedup: common.data.dedup,
    throttle: common.data.throttle,
    delivery: {
      ...d,
      concurrency: d.concurrency ?? (common.data.maxconcurrentrequests || undefined) ?? t.concurrency,
      maxbatch: d.maxbatch ?? t.maxBatch,
      linger: d.linger ?? t.linger ?? 0,
      ratelimit: d.ratelimit ?? t.rateLimit ?? 0,
      summarizeabove: d.summarizeabove ?? t.summarizeAbove ?? 0,
    },
    settings: settings.data as Record<string, unknown>,
  };
}

function readYaml(file: string, mapKeys: ReadonlySet<string>): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read config file ${file}: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    // The parser's message goes on to quote the offending lines, which may hold a secret: keep
    // only its first line (what is wrong, and where).
    throw new ConfigError([`${file} is not valid YAML: ${(err as Error).message.split('\n')[0].replace(/:$/, '')}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError([`${file}: the top level must be a mapping of keys`]);
  return lowerKeys(doc, mapKeys) as Raw;
}

/** falcosidekick's keys are case-insensitive; user maps (custom fields, headers) keep their case. */
function lowerKeys(value: unknown, mapKeys: ReadonlySet<string>, inMap = false): unknown {
  if (Array.isArray(value)) return value.map((v) => lowerKeys(v, mapKeys));
  if (value === null || typeof value !== 'object' || inMap) return value;
  const out: Raw = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k.toLowerCase();
    out[key] = lowerKeys(v, mapKeys, mapKeys.has(key));
  }
  return out;
}

function applyEnv(raw: Raw, path: string, kind: EnvKind, env: Env, problems: string[]): void {
  const name = envName(path);
  const value = env[name];
  if (value === undefined) return;
  if (kind === 'string') return setPath(raw, path, value);
  if (kind === 'list') return setPath(raw, path, value.split(',').map((s) => s.replace(/\s/g, '')).filter((s) => s !== ''));
  const existing = getPath(raw, path);
  const map: Record<string, string> = existing && typeof existing === 'object' ? { ...(existing as Record<string, string>) } : {};
  for (const [i, entry] of value.split(',').entries()) {
    if (entry.trim() === '') continue;
    const parts = entry.split(':');
    if (parts.length < 2 || parts[0].trim() === '') {
      // Not quoted: the entry may be a header with its token.
      problems.push(`${name}: entry ${i + 1} is not a key:value pair (write key:value, separated by commas)`);
      continue;
    }
    const key = parts[0].trim();
    // Unlike falcosidekick, a value may contain ':' (URLs, "Bearer x:y").
    let v = parts.slice(1).join(':').trim();
    if (path === 'customfields' && v.startsWith('%')) {
      const ref = env[v.slice(1)];
      if (ref === undefined) problems.push(`${name}: ${key} refers to env var ${v.slice(1)}, which is not set`);
      v = ref ?? '';
    }
    map[key] = v;
  }
  setPath(raw, path, map);
}

const nonEmpty = (v: unknown) => v !== undefined && v !== null && v !== '' && v !== false && v !== 'false';

function enabled(section: unknown, enabledBy: readonly string[]): boolean {
  return !!section && typeof section === 'object' && enabledBy.some((k) => nonEmpty((section as Raw)[k]));
}

function getPath(raw: Raw, path: string): unknown {
  let cur: unknown = raw;
  for (const p of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Raw)[p];
  }
  return cur;
}

function setPath(raw: Raw, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = raw;
  for (const p of parts.slice(0, -1)) {
    if (cur[p] === null || typeof cur[p] !== 'object' || Array.isArray(cur[p])) cur[p] = {};
    cur = cur[p] as Raw;
  }
  cur[parts[parts.length - 1]] = value;
}

/** The values of a section for the given (top-level or nested) keys, keeping nested objects whole. */
function pick(obj: unknown, keys: ReadonlyArray<{ path: string }>): Raw {
  const out: Raw = {};
  if (!obj || typeof obj !== 'object') return out;
  for (const { path } of keys) {
    const top = path.split('.')[0];
    if ((obj as Raw)[top] !== undefined) out[top] = (obj as Raw)[top];
  }
  return out;
}

function formatIssues(error: z.ZodError, origin: string): string[] {
  return error.issues.map((i) => {
    let path = origin;
    for (const p of i.path) path += typeof p === 'number' ? `[${p}]` : path === '' ? String(p) : `.${String(p)}`;
    let msg = i.message;
    if (i.code === 'unrecognized_keys') msg = `unknown setting${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    else if (i.code === 'invalid_type' && /received undefined/.test(msg)) msg = 'is required';
    return `${path || '(top level)'}: ${msg}`;
  });
}

/** A copy of the instances with secret settings masked, for logs and check-config. */
export function maskedOutputs(cfg: RouterConfig, types: Types): unknown[] {
  return cfg.outputs.map((o) => {
    const secrets = types.find((t) => t.type === o.type)?.secrets ?? [];
    const settings: Raw = {};
    for (const [k, v] of Object.entries(o.settings)) settings[k] = secrets.includes(k) && v !== '' ? '***' : v;
    const minimumpriority = o.minimumpriority === 0 ? '' : priorityName(o.minimumpriority);
    return { name: o.name, type: o.type, minimumpriority, delivery: o.delivery, dedup: o.dedup, throttle: o.throttle, settings };
  });
}
