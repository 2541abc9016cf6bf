/** The routing table (src/routing/table.ts): which instances get an alert, and why the others do not. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoutingTable, type RoutableOutput } from '../../src/routing/table.ts';
import { parseMatcher } from '../../src/routing/matcher.ts';
import type { ExcludeEntry } from '../../src/routing/exclude.ts';
import type { FalcoEvent } from '../../src/event/falco-event.ts';
import { priorityLevel, type Priority } from '../../src/event/priority.ts';

function alert(ns: string, rule = 'Terminal shell in container', priority: Priority = 'Warning', fields: Record<string, unknown> = {}): FalcoEvent {
  return { uuid: 'u', output: 'o', priority, rule, time: '2025-04-02T15:15:03Z', source: 'syscall', hostname: 'node-1', tags: ['shell'], output_fields: { 'k8s.ns.name': ns, ...fields } };
}

const m = (...t: string[]) => t.map(parseMatcher);
const entry = (comment: string, ...t: string[]): ExcludeEntry => ({ matchers: m(...t), comment });

const noisy = entry('controllers that talk to the API server by design', 'k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"');
const outputs: RoutableOutput[] = [
  { name: 'slack-team-a', minimumpriority: priorityLevel('warning'), match: m('k8s.ns.name=~"team-a-.*"'), exclude: [entry('CI shells', 'rule="Terminal shell in container"', 'user.name="ci-bot"')], origin: 'outputs[0]' },
  { name: 'slack-team-b', minimumpriority: priorityLevel('warning'), match: m('k8s.ns.name=~"team-b-.*"', 'tags!="noisy"'), origin: 'outputs[1]' },
  { name: 'archive', minimumpriority: 0, origin: 'outputs[2]' },
];
const table = new RoutingTable(outputs, [noisy]);

test('routes by minimum priority, then global exclude, then match, then the instance\'s exclude', () => {
  const r = (ev: FalcoEvent) => {
    const { targets, reasons } = table.route(ev);
    return { targets, reasons: [...reasons] };
  };
  assert.deepEqual(r(alert('team-a-web')), { targets: ['slack-team-a', 'archive'], reasons: [undefined, 'match', undefined] });
  assert.deepEqual(r(alert('team-b-web')), { targets: ['slack-team-b', 'archive'], reasons: ['match', undefined, undefined] });
  assert.deepEqual(r(alert('team-a-web', 'Terminal shell in container', 'Notice')), { targets: ['archive'], reasons: ['priority', 'priority', undefined] });
  assert.deepEqual(r(alert('team-a-web', 'Terminal shell in container', 'Warning', { 'user.name': 'ci-bot' })), { targets: ['archive'], reasons: ['exclude', 'match', undefined] });
  // The noisy controller goes nowhere; priority is checked first, so a low one counts as such.
  assert.deepEqual(r(alert('external-dns', 'Contact K8S API Server From Container')), { targets: [], reasons: ['exclude', 'exclude', 'exclude'] });
  assert.deepEqual(r(alert('external-secrets', 'Contact K8S API Server From Container', 'Notice')), { targets: [], reasons: ['priority', 'priority', 'exclude'] });
  // Only that pair: the same rule elsewhere, or another rule there, is routed as usual.
  assert.deepEqual(r(alert('team-a-web', 'Contact K8S API Server From Container')).targets, ['slack-team-a', 'archive']);
  assert.deepEqual(r(alert('external-dns', 'Terminal shell in container')).targets, ['archive']);
});

test('"Test rule" reaches every instance, whatever its minimum priority, match and exclude', () => {
  const all = new RoutingTable(outputs, [entry('everything', 'rule=~".*"')]);
  const { targets, reasons } = all.route(alert('nowhere', 'Test rule', 'Debug'));
  assert.deepEqual(targets, ['slack-team-a', 'slack-team-b', 'archive']);
  assert.deepEqual([...reasons], [undefined, undefined, undefined]);
  assert.equal(all.explain(alert('nowhere', 'Test rule', 'Debug')).test, true);
});

test('explain gives the same decisions as route, with the failing matcher and the matching entry', () => {
  const events = [
    alert('team-a-web'),
    alert('team-b-web', 'x', 'Critical', {}),
    { ...alert('team-b-web'), tags: ['noisy'] },
    alert('team-a-web', 'Terminal shell in container', 'Warning', { 'user.name': 'ci-bot' }),
    alert('external-dns', 'Contact K8S API Server From Container'),
    alert('external-dns', 'Contact K8S API Server From Container', 'Debug'),
    alert('team-a-x', 'Test rule', 'Debug'),
  ];
  for (const ev of events) {
    const routed = table.route(ev);
    const why = table.explain(ev);
    assert.deepEqual(why.outputs.map((v) => v.reason), [...routed.reasons], ev.output_fields['k8s.ns.name'] as string);
    assert.deepEqual(why.outputs.filter((v) => v.sent).map((v) => v.output.name), routed.targets);
  }
  const b = table.explain({ ...alert('team-b-web'), tags: ['noisy'] }).outputs[1];
  assert.equal(b.reason, 'match');
  assert.equal(b.failed?.index, 1);
  assert.equal(String(b.failed?.matcher), 'tags!="noisy"');
  const ci = table.explain(alert('team-a-web', 'Terminal shell in container', 'Warning', { 'user.name': 'ci-bot' })).outputs[0];
  assert.deepEqual({ scope: ci.excludedBy?.scope, index: ci.excludedBy?.index, comment: ci.excludedBy?.entry.comment }, { scope: 'output', index: 0, comment: 'CI shells' });
  const ctl = table.explain(alert('external-dns', 'Contact K8S API Server From Container'));
  assert.equal(ctl.globalExclude?.index, 0);
  assert.deepEqual(ctl.outputs.map((v) => v.excludedBy?.scope), ['global', 'global', 'global']);
});

test('a table without matchers routes by minimum priority alone', () => {
  const plain = new RoutingTable([
    { name: 'all', minimumpriority: 0 },
    { name: 'errors', minimumpriority: priorityLevel('error') },
  ]);
  assert.deepEqual(plain.route(alert('x', 'r', 'Warning')).targets, ['all']);
  assert.deepEqual(plain.route(alert('x', 'r', 'Critical')).targets, ['all', 'errors']);
});
