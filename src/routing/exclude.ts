/** Exclude entries: an alert that satisfies every matcher of an entry is dropped (everywhere, or for one output instance). */
import type { FalcoEvent } from '../event/falco-event.ts';
import { firstFailing, type Matcher } from './matcher.ts';

export interface ExcludeEntry {
  /** All must hold; never empty (config refuses an entry that would drop every alert). */
  readonly matchers: readonly Matcher[];
  /** Why the entry exists, shown by route-test; '' when not given. */
  readonly comment: string;
}

/** Index of the first entry whose matchers all hold, or -1. */
export function firstExcluding(entries: readonly ExcludeEntry[], ev: FalcoEvent): number {
  for (let i = 0; i < entries.length; i++) if (firstFailing(entries[i].matchers, ev) < 0) return i;
  return -1;
}
