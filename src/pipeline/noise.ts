/**
 * Dedup and throttle of one output instance: which alerts go out one by one and which are held
 * back for a summary when their window ends. Counted per key in windows the queue driver keeps
 * (in the process, or in Redis shared by replicas), so the decision is the same whichever router
 * handles the alert.
 */
import { createHash } from 'node:crypto';
import type { FalcoEvent } from '../event/falco-event.ts';
import { eventTimeMs } from '../event/falco-event.ts';
import { fieldValue } from '../event/field-value.ts';
import type { OutputInstance } from '../config/load.ts';
import type { WindowHit, WindowKind } from '../queue/types.ts';

export interface NoiseStage {
  kind: WindowKind;
  windowMs: number;
  /** Alerts per key and window sent one by one. */
  limit: number;
  key(ev: FalcoEvent): Array<[string, string]>;
  /** The part of the key a summary shows. */
  shown(key: Array<[string, string]>): Array<[string, string]>;
}

const all = (key: Array<[string, string]>) => key;
/** The default dedup key would repeat the whole alert: its summary shows the rule and host. */
const ruleAndHost = (key: Array<[string, string]>) => key.filter(([k]) => k === 'rule' || k === 'hostname');

/** Output fields that differ between two alerts about the same action (times, counters, ids). */
const VOLATILE = /^evt\.|\.(pid|ppid|vpid|tid|vtid)$/;

/** The instance's stages, dedup before throttle; empty when neither is configured. */
export function noiseStages(inst: OutputInstance): NoiseStage[] {
  const stages: NoiseStage[] = [];
  if (inst.dedup) {
    const fields = inst.dedup.key;
    stages.push({
      kind: 'dedup',
      windowMs: inst.dedup.window,
      limit: 1,
      key: fields ? (ev) => pairs(ev, fields) : defaultDedupKey,
      shown: fields ? all : ruleAndHost,
    });
  }
  if (inst.throttle) {
    const fields = inst.throttle.key ?? ['rule'];
    stages.push({ kind: 'throttle', windowMs: inst.throttle.window, limit: inst.throttle.max, key: (ev) => pairs(ev, fields), shown: all });
  }
  return stages;
}

function pairs(ev: FalcoEvent, fields: readonly string[]): Array<[string, string]> {
  return fields.map((f) => {
    const v = fieldValue(ev, f);
    return [f, typeof v === 'string' ? v : v.join(',')];
  });
}

function defaultDedupKey(ev: FalcoEvent): Array<[string, string]> {
  const key = pairs(ev, ['rule', 'priority', 'hostname', 'source']);
  for (const f of Object.keys(ev.output_fields).sort()) if (!VOLATILE.test(f)) key.push([f, fieldValue(ev, f) as string]);
  return key;
}

export function windowHit(stage: NoiseStage, ev: FalcoEvent): WindowHit {
  const key = stage.key(ev);
  const keyJson = JSON.stringify(key);
  return {
    kind: stage.kind,
    hash: createHash('sha256').update(keyJson).digest('hex').slice(0, 24),
    windowMs: stage.windowMs,
    limit: stage.limit,
    uuid: ev.uuid,
    priority: ev.priority,
    hostname: ev.hostname,
    pod: String(fieldValue(ev, 'k8s.pod.name')),
    rule: ev.rule,
    timeMs: eventTimeMs(ev.time) || 0,
    time: ev.time,
    key: JSON.stringify(stage.shown(key)),
  };
}
