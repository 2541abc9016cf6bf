/**
 * An alert's field by the name users write in matchers and keys: rule, priority, source, hostname,
 * output, tags (a list), or any output field by its Falco name. As text: numbers by their exact
 * text (int64 stays exact), booleans as true/false, a missing field or null as "", objects and
 * arrays as compact JSON.
 */
import type { FalcoEvent } from './falco-event.ts';
import { isLosslessNumber, stringifyExact } from './json.ts';

export function fieldValue(ev: FalcoEvent, name: string): string | readonly string[] {
  switch (name) {
    case 'rule':
      return ev.rule;
    case 'priority':
      return ev.priority;
    case 'source':
      return ev.source;
    case 'hostname':
      return ev.hostname;
    case 'output':
      return ev.output;
    case 'tags':
      return ev.tags;
  }
  return Object.hasOwn(ev.output_fields, name) ? valueText(ev.output_fields[name]) : '';
}

export function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (isLosslessNumber(v) || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return stringifyExact(v);
}
