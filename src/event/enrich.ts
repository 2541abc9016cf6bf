import { randomUUID } from 'node:crypto';
import { decodeEvent, checkEvent, serializeEvent, type FalcoEvent } from './falco-event.ts';
import { stringifyLossless, setOwn } from './json.ts';
import { cutUtf8 } from './truncate.ts';
import { fieldsData, type GoTemplate } from './template.ts';

export interface EnrichSettings {
  customfields: Record<string, string>;
  customtags: string[];
  templatedfields: Record<string, GoTemplate>;
  bracketreplacer: string;
  outputfieldformat: string;
}

export type Warn = (msg: string, extra?: Record<string, unknown>) => void;

/**
 * Decode, enrich and check one alert body, in falcosidekick's order (compat §2.4); `json` is the
 * event as stored and sent to webhooks.
 */
export async function parseAndEnrich(body: string, s: EnrichSettings, warn: Warn): Promise<{ event: FalcoEvent; json: string }> {
  const ev = decodeEvent(body);
  // The fields' text is kept only while no step below changes them.
  let keptText = ev.fieldsText;
  const customPairs: string[] = [];
  for (const [k, v] of Object.entries(s.customfields)) {
    setOwn(ev.output_fields, k, v);
    customPairs.push(`${k}=${v}`);
    keptText = undefined;
  }
  if (s.customtags.length > 0) ev.tags = [...ev.tags, ...s.customtags];
  if (ev.rule === 'Test rule') ev.source = 'internal';
  if (ev.source === '') ev.source = 'syscalls';
  ev.uuid = randomUUID();
  const templatedPairs: string[] = [];
  for (const [k, tmpl] of Object.entries(s.templatedfields)) {
    let value: string;
    try {
      value = await tmpl.render(fieldsData(ev.output_fields));
    } catch (err) {
      warn('templated field failed to render', { field: k, err: (err as Error).message });
      continue;
    }
    setOwn(ev.output_fields, k, value);
    templatedPairs.push(`${k}=${value}`);
    keptText = undefined;
  }
  if (ev.tags.length > 1) ev.tags = [...ev.tags].sort();
  if (s.bracketreplacer !== '') {
    ev.output_fields = replaceBrackets(ev.output_fields, s.bracketreplacer);
    keptText = undefined;
  }
  if (s.outputfieldformat !== '') {
    ev.output = formatOutput(ev.output, ev.priority, s.outputfieldformat, customPairs, templatedPairs, ev.tags);
  }
  const checked = checkEvent(ev);
  if (truncateLongFields(checked)) keptText = undefined;
  return { event: checked, json: serializeEvent(checked, keptText) };
}

function replaceBrackets(fields: Record<string, unknown>, replacer: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    setOwn(out, k.includes('[') ? k.replaceAll(']', '').replaceAll('[', replacer) : k, v);
  }
  return out;
}

const FALCO_OUTPUT = /^[0-9:]+\.[0-9]+: (Debug|Informational|Notice|Warning|Error|Critical|Alert|Emergency) .*/is;

function formatOutput(
  output: string,
  priority: string,
  format: string,
  custom: string[],
  templated: string[],
  tags: string[],
): string {
  if (!FALCO_OUTPUT.test(output)) return output;
  const tokens = output.split(' ');
  if (tokens.length < 3) return output;
  const title = priority.charAt(0).toUpperCase() + priority.slice(1).toLowerCase();
  let text = format
    .replaceAll('<timestamp>', tokens[0].replace(/:$/, ''))
    .replaceAll('<priority>', title === 'Info' ? 'Informational' : title)
    .replaceAll('<output>', tokens.slice(2).join(' '))
    .replaceAll('<custom_fields>', custom.join(' '))
    .replaceAll('<templated_fields>', templated.join(' '))
    .replaceAll('<tags>', tags.join(','));
  for (const suffix of [' ', '( )', '()', ' ']) if (text.endsWith(suffix)) text = text.slice(0, -suffix.length);
  return text;
}

const MAX_PAYLOAD = 4096;
const MAX_FIELD = 512;
const KEEP = 507;

/**
 * falcosidekick cuts long string fields when the payload is over 4 KiB. Unlike it, we cut at a
 * character boundary so the result is still valid UTF-8.
 */
function truncateLongFields(ev: FalcoEvent): boolean {
  // Only fields over 512 bytes are ever cut: without one, skip measuring the payload.
  let long = false;
  for (const k in ev.output_fields) {
    const v = ev.output_fields[k];
    if (typeof v === 'string' && v.length > MAX_FIELD / 3 && Buffer.byteLength(v) > MAX_FIELD) long = true;
  }
  if (!long) return false;
  if (Buffer.byteLength(stringifyLossless(ev)) <= MAX_PAYLOAD) return false;
  for (const [k, v] of Object.entries(ev.output_fields)) {
    if (typeof v !== 'string' || Buffer.byteLength(v) <= MAX_FIELD) continue;
    const cut = cutUtf8(v, KEEP) + '[...]';
    setOwn(ev.output_fields, k, cut);
    if (ev.output.includes(v)) ev.output = ev.output.replaceAll(v, cut);
  }
  return true;
}
