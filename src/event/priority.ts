/** Falco priorities in falcosidekick's order; the index is the level used for comparisons and metrics. */
export const PRIORITIES = [
  '',
  'Debug',
  'Informational',
  'Notice',
  'Warning',
  'Error',
  'Critical',
  'Alert',
  'Emergency',
] as const;

export type Priority = Exclude<(typeof PRIORITIES)[number], ''>;

const BY_NAME = new Map<string, number>(PRIORITIES.map((p, i) => [p.toLowerCase(), i]));
BY_NAME.delete('');
BY_NAME.set('info', 2);

/** Level of a priority name (case-insensitive, `info` accepted), or 0 when unknown. */
export function priorityLevel(name: string): number {
  return BY_NAME.get(name.toLowerCase()) ?? 0;
}

export function priorityName(level: number): Priority {
  return PRIORITIES[level] as Priority;
}

export const PRIORITY_CHOICES = 'emergency, alert, critical, error, warning, notice, informational (or info), debug';
