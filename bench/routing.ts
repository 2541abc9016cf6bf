/**
 * Routing cost per alert, in process (a micro-benchmark, not part of `npm run bench`):
 *   node --import tsx bench/routing.ts
 * Parses and enriches bench events as ingest does, then times RoutingTable.route() for
 *   - one instance without matchers (what ingest did before matchers);
 *   - 20 instances, each with 3 matchers (a namespace regex, a rule inequality, a tag regex),
 *     and a global exclude list of 10 entries of 2 matchers each (the issue's scenario);
 * next to the cost of parse + enrich, which every alert pays anyway.
 */
import { parseAndEnrich, type EnrichSettings } from '../src/event/enrich.ts';
import type { FalcoEvent } from '../src/event/falco-event.ts';
import { RoutingTable, type RoutableOutput } from '../src/routing/table.ts';
import { parseMatcher } from '../src/routing/matcher.ts';
import type { ExcludeEntry } from '../src/routing/exclude.ts';
import { benchEvent } from './events.ts';

const N = 20_000;
const ROUNDS = 5;
const none: EnrichSettings = { customfields: {}, customtags: [], templatedfields: {}, bracketreplacer: '', outputfieldformat: '' };

// Namespaces spread over the 20 teams, some controllers, and some that no team takes.
const bodies = Array.from({ length: N }, (_, n) => {
  const ns = n % 10 === 0 ? `external-${n % 20 === 0 ? 'dns' : 'secrets'}` : n % 7 === 0 ? 'kube-system' : `team-${n % 20}-web`;
  return benchEvent(n).replace('"k8s.ns.name":"payments"', `"k8s.ns.name":"${ns}"`);
});

const m = (...t: string[]) => t.map(parseMatcher);
const many: RoutableOutput[] = Array.from({ length: 20 }, (_, i) => ({
  name: `team-${i}`,
  minimumpriority: 0,
  match: m(`k8s.ns.name=~"team-${i}-.*"`, 'rule!="Clear Log Activities"', 'tags=~"mitre_.*"'),
}));
const exclude: ExcludeEntry[] = Array.from({ length: 10 }, (_, i) => ({
  matchers: m(`k8s.ns.name=~"external-(dns|secrets)${i === 0 ? '' : `-${i}`}"`, 'rule="Contact K8S API Server From Container"'),
  comment: '',
}));
const tables: Array<[string, RoutingTable]> = [
  ['1 instance, no matchers', new RoutingTable([{ name: 'archive', minimumpriority: 0 }])],
  ['20 instances x 3 matchers + 10 exclude entries', new RoutingTable(many, exclude)],
];

const events: FalcoEvent[] = [];
let t = performance.now();
for (const b of bodies) events.push((await parseAndEnrich(b, none, () => {})).event);
const parseUs = ((performance.now() - t) * 1000) / N;

let sink = 0;
const results: string[] = [];
for (const [name, table] of tables) {
  for (const ev of events) sink += table.route(ev).targets.length; // warm-up
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    t = performance.now();
    for (const ev of events) sink += table.route(ev).targets.length;
    times.push(((performance.now() - t) * 1000) / N);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  results.push(`${name.padEnd(48)} ${median.toFixed(2).padStart(6)} µs/alert  (${((median / parseUs) * 100).toFixed(1)}% of parse + enrich)`);
}
process.stdout.write(`parse + enrich ${parseUs.toFixed(1)} µs/alert (${N} bench events, Node ${process.version})\n${results.join('\n')}\n`);
// Uses the loops' result, so the optimiser cannot drop the calls.
if (sink < 0) process.stdout.write('');
