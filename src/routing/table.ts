/**
 * Which output instances an alert goes to, decided once at ingest. For each instance, in this order:
 * priority below its minimum → `priority`; an entry of the global `exclude` matching → `exclude`;
 * a matcher of its `match` not holding → `match`; an entry of its own `exclude` matching →
 * `exclude`; a run-time silence covering the alert and the instance → `silence`. "Test rule"
 * (POST /test) reaches every instance, as in falcosidekick.
 *
 * The table is compiled once per config (matchers hold their compiled regexes) and routing an
 * alert allocates only its result. Dedup and throttle are decided later, in the delivery
 * pipeline, and count under the same metric.
 */
import type { FalcoEvent } from '../event/falco-event.ts';
import { PRIORITIES, priorityLevel } from '../event/priority.ts';
import { firstFailing, type Matcher } from './matcher.ts';
import { firstExcluding, type ExcludeEntry } from './exclude.ts';

/** Why an instance does not get an alert. They are label values of falco_router_events_filtered_total. */
export type RouteReason = 'priority' | 'match' | 'exclude' | 'silence';
// 'dedup' and 'throttle' are the delivery pipeline's.
export const ROUTE_REASONS: readonly RouteReason[] = ['priority', 'match', 'exclude', 'silence'];

/** Run-time silences, as routing asks them (silences.ts). */
export interface Silences {
  silencedBy(ev: FalcoEvent, output: string): { id: string } | undefined;
}

export const TEST_RULE = 'Test rule';

export interface RoutableOutput {
  readonly name: string;
  /** Level (src/event/priority.ts); 0 takes every priority. */
  readonly minimumpriority: number;
  /** All must hold; empty: every alert. */
  readonly match?: readonly Matcher[];
  readonly exclude?: readonly ExcludeEntry[];
  /** Where it was configured (`outputs[2]`), for explanations. */
  readonly origin?: string;
}

export interface RouteResult {
  /** Names of the instances that get the alert, in config order. */
  readonly targets: string[];
  /** Per instance, at the index it has in the table's `outputs`: why it does not get the alert; undefined where it does. */
  readonly reasons: Array<RouteReason | undefined>;
  /** Where the reason is `silence`, at the same index: the silence's id (absent when no silence applied). */
  readonly silenced?: string[];
}

/** route-test's answer: for each instance, sent or not, and what decided it. */
export interface RouteExplanation {
  /** "Test rule": every instance gets it, whatever their settings. */
  test: boolean;
  /** The global exclude entry the alert satisfies (not checked for "Test rule"). */
  globalExclude?: { index: number; entry: ExcludeEntry };
  outputs: OutputVerdict[];
}

export interface OutputVerdict {
  output: RoutableOutput;
  sent: boolean;
  reason?: RouteReason;
  /** reason `match`: the first matcher of the instance's match that does not hold. */
  failed?: { index: number; matcher: Matcher };
  /** reason `exclude`: the entry that matched, global or the instance's own. */
  excludedBy?: { scope: 'global' | 'output'; index: number; entry: ExcludeEntry };
  /** reason `silence`: the silence's id. */
  silence?: string;
}

const NONE: readonly never[] = [];

// Alerts reach routing with their priority already written as in PRIORITIES: reading the level
// from this map spares priorityLevel's lower-casing (a string per alert).
const LEVELS = new Map<string, number>(PRIORITIES.map((p, i) => [p, i]));
const levelOf = (p: string) => LEVELS.get(p) ?? priorityLevel(p);

export class RoutingTable {
  readonly outputs: readonly RoutableOutput[];
  readonly exclude: readonly ExcludeEntry[];
  readonly #match: ReadonlyArray<readonly Matcher[]>;
  readonly #excludes: ReadonlyArray<readonly ExcludeEntry[]>;

  constructor(outputs: readonly RoutableOutput[], exclude: readonly ExcludeEntry[] = NONE) {
    this.outputs = outputs;
    this.exclude = exclude;
    this.#match = outputs.map((o) => o.match ?? NONE);
    this.#excludes = outputs.map((o) => o.exclude ?? NONE);
  }

  route(ev: FalcoEvent, silences?: Silences): RouteResult {
    const outs = this.outputs;
    const targets: string[] = [];
    const reasons = new Array<RouteReason | undefined>(outs.length);
    let silenced: string[] | undefined;
    const test = ev.rule === TEST_RULE;
    const level = levelOf(ev.priority);
    // Same answer for every instance: evaluated once per alert.
    const globalHit = test || this.exclude.length === 0 ? -1 : firstExcluding(this.exclude, ev);
    for (let i = 0; i < outs.length; i++) {
      const why = test ? undefined : this.#decide(i, ev, level, globalHit, silences);
      if (why === undefined) targets.push(outs[i].name);
      else if (typeof why === 'string') reasons[i] = why;
      else {
        reasons[i] = 'silence';
        (silenced ??= [])[i] = why.id;
      }
    }
    return silenced ? { targets, reasons, silenced } : { targets, reasons };
  }

  /** The same decisions as route(), with what made each (route-test). */
  explain(ev: FalcoEvent, silences?: Silences): RouteExplanation {
    const test = ev.rule === TEST_RULE;
    const level = levelOf(ev.priority);
    const globalHit = test ? -1 : firstExcluding(this.exclude, ev);
    const outputs = this.outputs.map((output, i): OutputVerdict => {
      const why = test ? undefined : this.#decide(i, ev, level, globalHit, silences);
      const reason = typeof why === 'object' ? 'silence' : why;
      const verdict: OutputVerdict = { output, sent: reason === undefined, reason };
      if (typeof why === 'object') verdict.silence = why.id;
      if (reason === 'match') {
        const index = firstFailing(this.#match[i], ev);
        verdict.failed = { index, matcher: this.#match[i][index] };
      } else if (reason === 'exclude') {
        const own = globalHit < 0 ? firstExcluding(this.#excludes[i], ev) : -1;
        verdict.excludedBy = globalHit >= 0 ? { scope: 'global', index: globalHit, entry: this.exclude[globalHit] } : { scope: 'output', index: own, entry: this.#excludes[i][own] };
      }
      return verdict;
    });
    return { test, globalExclude: globalHit >= 0 ? { index: globalHit, entry: this.exclude[globalHit] } : undefined, outputs };
  }

  /** The one place the order of the checks is written (route and explain both use it). A silence that applies is returned itself. */
  #decide(i: number, ev: FalcoEvent, level: number, globalHit: number, silences?: Silences): Exclude<RouteReason, 'silence'> | { id: string } | undefined {
    if (level < this.outputs[i].minimumpriority) return 'priority';
    if (globalHit >= 0) return 'exclude';
    if (firstFailing(this.#match[i], ev) >= 0) return 'match';
    if (firstExcluding(this.#excludes[i], ev) >= 0) return 'exclude';
    return silences?.silencedBy(ev, this.outputs[i].name);
  }
}
