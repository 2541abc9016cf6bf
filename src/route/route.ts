import type { FalcoEvent } from '../event/falco-event.ts';
import { priorityLevel } from '../event/priority.ts';

export interface RoutableOutput {
  name: string;
  minimumpriority: number;
}

/** The output instances that want an event: minimum priority, bypassed by "Test rule" as in falcosidekick. */
export function routeEvent(ev: FalcoEvent, outputs: readonly RoutableOutput[]): string[] {
  const level = priorityLevel(ev.priority);
  const test = ev.rule === 'Test rule';
  const names: string[] = [];
  for (const o of outputs) if (test || level >= o.minimumpriority) names.push(o.name);
  return names;
}
