/**
 * Config = built-in defaults < YAML file < environment variables, with falcosidekick's key names,
 * env naming (key path upper-cased, `.` → `_`) and `k:v,k2:v2` maps. Everything is validated
 * here, at start, and every error names the key path.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { globalSchema, instanceCommon, COMMON_KEYS, GLOBAL_ENV_KEYS, MAP_KEYS, type GlobalConfig, type DeliverySettings } from './schema.ts';
import type { OutputType } from '../../outputs/types.ts';
import { compileTemplate, type CompiledTemplate } from '../event/template.ts';
import { priorityName } from '../event/priority.ts';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export interface OutputInstance {
  name: string;
  type: string;
  /** Where it was configured, for messages: `outputs[2]` or `webhook`. */
  origin: string;
  minimumpriority: number;
  delivery: Required<DeliverySettings>;
  settings: Record<string, unknown>;
}

export interface RouterConfig extends Omit<GlobalConfig, 'outputs' | 'templatedfields'> {
  templatedfields: Record<string, CompiledTemplate>;
  outputs: OutputInstance[];
  /** True when no output was configured and the embedded file output is used. */
  usingDefaultOutput: boolean;
  /** Things worth a log line at start (settings we ignore). */
  warnings: string[];
}

/** Top-level falcosidekick keys for outputs and features we do not have: warned about, not fatal. */
const FALCOSIDEKICK_ONLY = new Set(
  (
    'slack aws prometheus statsd dogstatsd rocketchat mattermost teams webex discord googlechat cliq telegram ' +
    'datadog datadoglogs influxdb wavefront spyderbat timescaledb dynatrace otlp alertmanager opsgenie pagerduty ' +
    'grafanaoncall elasticsearch loki grafana syslog zincsearch openobserve sumologic quickwit logstash splunk gcp ' +
    'yandex fission cloudevents kubeless openfaas tekton nats stan kafka kafkarest rabbitmq azure mqtt gotify smtp ' +
    'redis nodered webui policyreport talon n8n'
  ).split(' '),
);

export const DEFAULT_OUTPUT = { name: 'file', type: 'file', path: 'falco-events.ndjson' };

type Env = Record<string, string | undefined>;
type Raw = Record<string, unknown>;

export function loadConfig(opts: { file?: string; env?: Env; types: readonly OutputType<any>[] }): RouterConfig {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  let raw: Raw = {};
  if (opts.file) raw = readYaml(opts.file);

  for (const [path, kind] of Object.entries(GLOBAL_ENV_KEYS)) applyEnv(raw, path, kind, env, problems);
  const outputsRaw = Array.isArray(raw.outputs) ? (raw.outputs as unknown[]) : raw.outputs === undefined ? [] : null;
  if (outputsRaw === null) problems.push('outputs: must be a list of output instances');

  const instances: Array<{ raw: Raw; origin: string; lenient: boolean }> = (outputsRaw ?? []).map((o, i) => ({
    raw: (o && typeof o === 'object' ? o : { invalid: o }) as Raw,
    origin: `outputs[${i}]`,
    lenient: false,
  }));

  // falcosidekick's one-instance-per-type sections: `webhook.address`, `slack.webhookurl`, …
  const sectionKeys = new Set<string>();
  for (const t of opts.types) {
    const fk = t.falcosidekick;
    if (!fk) continue;
    sectionKeys.add(fk.prefix.split('.')[0]);
    const keys = { ...fk.keys, minimumpriority: 'string' as const, maxconcurrentrequests: 'string' as const };
    for (const [k, kind] of Object.entries(keys)) applyEnv(raw, `${fk.prefix}.${k}`, kind, env, problems);
    for (const k of ['attempts', 'initialdelay', 'maxdelay', 'timeout', 'concurrency', 'ratelimit', 'maxbatch', 'linger', 'summarizeabove']) {
      applyEnv(raw, `${fk.prefix}.delivery.${k}`, 'string', env, problems);
    }
    if (fk.shared) for (const [k, kind] of Object.entries(fk.shared.keys)) applyEnv(raw, `${fk.shared.prefix}.${k}`, kind, env, problems);
    const section = getPath(raw, fk.prefix);
    if (!section || typeof section !== 'object') continue;
    const enabler = (section as Raw)[fk.enabledBy];
    if (enabler === undefined || enabler === null || enabler === '') continue;
    const shared = fk.shared ? pick(getPath(raw, fk.shared.prefix), Object.keys(fk.shared.keys)) : {};
    const own = pick(section, [...Object.keys(keys), 'delivery']);
    instances.push({ raw: { ...shared, ...own, name: t.type, type: t.type }, origin: fk.prefix, lenient: true });
  }
  for (const k of sectionKeys) delete raw[k];
  const warnings: string[] = [];
  for (const k of Object.keys(raw)) {
    if (FALCOSIDEKICK_ONLY.has(k)) {
      warnings.push(`${k}: falcosidekick setting not supported by this router; ignored`);
      delete raw[k];
    }
  }

  const global = globalSchema.safeParse({ ...raw, outputs: [] });
  if (!global.success) problems.push(...formatIssues(global.error, ''));

  const templatedfields: Record<string, CompiledTemplate> = {};
  if (global.success) {
    for (const [k, src] of Object.entries(global.data.templatedfields)) {
      try {
        templatedfields[k] = compileTemplate(k, src);
      } catch (err) {
        problems.push(`templatedfields.${k}: ${(err as Error).message}`);
      }
    }
  }

  const outputs: OutputInstance[] = [];
  const names = new Map<string, string>();
  let usingDefaultOutput = false;
  if (instances.length === 0) {
    usingDefaultOutput = true;
    instances.push({ raw: { ...DEFAULT_OUTPUT }, origin: 'default output', lenient: false });
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

function validateInstance(
  raw: Raw,
  origin: string,
  lenient: boolean,
  types: readonly OutputType<any>[],
  problems: string[],
): OutputInstance | undefined {
  const common = instanceCommon.safeParse(raw);
  if (!common.success) problems.push(...formatIssues(common.error, origin));
  const type = types.find((t) => t.type === raw.type);
  if (!type) {
    if (typeof raw.type === 'string') problems.push(`${origin}.type: "${raw.type}" is not an output type; use one of ${types.map((t) => t.type).join(', ')}`);
    return undefined;
  }
  const rest: Raw = {};
  for (const [k, v] of Object.entries(raw)) if (!(COMMON_KEYS as readonly string[]).includes(k)) rest[k] = v;
  // falcosidekick sections keep working when they hold keys we do not support; native config must be exact.
  const schema = lenient ? type.schema : strict(type.schema);
  const settings = schema.safeParse(rest);
  if (!settings.success) problems.push(...formatIssues(settings.error, origin));
  if (!common.success || !settings.success) return undefined;
  const d = common.data.delivery;
  const concurrency = d.concurrency ?? (common.data.maxconcurrentrequests || undefined) ?? type.defaults.concurrency;
  return {
    name: common.data.name,
    type: type.type,
    origin,
    minimumpriority: common.data.minimumpriority,
    delivery: {
      ...d,
      concurrency,
      maxbatch: d.maxbatch ?? type.defaults.maxBatch,
      linger: d.linger ?? type.defaults.linger ?? 0,
      ratelimit: d.ratelimit ?? type.defaults.rateLimit ?? 0,
      summarizeabove: d.summarizeabove ?? type.defaults.summarizeAbove ?? 0,
    },
    settings: settings.data as Record<string, unknown>,
  };
}

function strict(schema: z.ZodType): z.ZodType {
  const s = schema as unknown as { strict?: () => z.ZodType };
  return typeof s.strict === 'function' ? s.strict() : schema;
}

function readYaml(file: string): Raw {
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
    throw new ConfigError([`${file} is not valid YAML: ${(err as Error).message}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError([`${file}: the top level must be a mapping of keys`]);
  return lowerKeys(doc) as Raw;
}

/** falcosidekick's keys are case-insensitive; user maps (custom fields, headers) keep their case. */
function lowerKeys(value: unknown, inMap = false): unknown {
  if (Array.isArray(value)) return value.map((v) => lowerKeys(v));
  if (value === null || typeof value !== 'object' || inMap) return value;
  const out: Raw = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k.toLowerCase();
    out[key] = lowerKeys(v, MAP_KEYS.has(key));
  }
  return out;
}

function applyEnv(raw: Raw, path: string, kind: 'string' | 'map' | 'list', env: Env, problems: string[]): void {
  const name = path.toUpperCase().replace(/\./g, '_');
  const value = env[name];
  if (value === undefined) return;
  if (kind === 'string') return setPath(raw, path, value);
  if (kind === 'list') return setPath(raw, path, value.split(',').map((s) => s.replace(/\s/g, '')).filter((s) => s !== ''));
  const existing = getPath(raw, path);
  const map: Record<string, string> = existing && typeof existing === 'object' ? { ...(existing as Record<string, string>) } : {};
  for (const entry of value.split(',')) {
    if (entry.trim() === '') continue;
    const parts = entry.split(':');
    if (parts.length < 2 || parts[0].trim() === '') {
      problems.push(`${name}: "${entry}" is not a key:value pair`);
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

function pick(obj: unknown, keys: string[]): Raw {
  const out: Raw = {};
  if (!obj || typeof obj !== 'object') return out;
  for (const k of keys) if ((obj as Raw)[k] !== undefined) out[k] = (obj as Raw)[k];
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
export function maskedOutputs(cfg: RouterConfig, types: readonly OutputType<any>[]): unknown[] {
  return cfg.outputs.map((o) => {
    const secrets = types.find((t) => t.type === o.type)?.secrets ?? [];
    const settings: Raw = {};
    for (const [k, v] of Object.entries(o.settings)) settings[k] = secrets.includes(k) && v !== '' ? '***' : v;
    const minimumpriority = o.minimumpriority === 0 ? '' : priorityName(o.minimumpriority);
    return { name: o.name, type: o.type, minimumpriority, delivery: o.delivery, settings };
  });
}
