/** falcosidekick's falco_events_total: its labels come from the request body, so its series are bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, MAX_FALCO_SERIES } from '../../src/metrics.ts';

const series = async (m: Metrics) =>
  (await m.registry.getSingleMetric('falcosecurity_falcosidekick_falco_events_total')!.get()).values.map((v) => ({ labels: v.labels, value: v.value }));

test('counts accepted alerts per hostname, rule and priority, as falcosidekick', async () => {
  const m = new Metrics();
  m.falcoEvent('node-1', 'Write below etc', 4, 'warning', 'syscall');
  m.falcoEvent('node-1', 'Write below etc', 4, 'warning', 'syscall');
  m.falcoEvent('node-2', 'Write below etc', 3, 'error', 'syscall');
  assert.deepEqual(await series(m), [
    { labels: { hostname: 'node-1', rule: 'Write below etc', priority: '4', priority_raw: 'warning', source: 'syscall', k8s_ns_name: '', k8s_pod_name: '' }, value: 2 },
    { labels: { hostname: 'node-2', rule: 'Write below etc', priority: '3', priority_raw: 'error', source: 'syscall', k8s_ns_name: '', k8s_pod_name: '' }, value: 1 },
  ]);
});

test(`keeps at most ${MAX_FALCO_SERIES} series whatever the senders write; the rest count under "other", none is lost`, async () => {
  const m = new Metrics();
  const posted = MAX_FALCO_SERIES + 500;
  for (let i = 0; i < posted; i++) m.falcoEvent('node-1', `rule chosen by the sender ${i}`, 4, 'warning', 'syscall');
  m.falcoEvent('node-1', 'rule chosen by the sender 0', 4, 'warning', 'syscall');
  const all = await series(m);
  assert.equal(all.length, MAX_FALCO_SERIES + 1);
  assert.equal(all.reduce((sum, s) => sum + s.value, 0), posted + 1);
  assert.deepEqual(all.find((s) => s.labels.rule === 'other'), {
    labels: { hostname: 'other', rule: 'other', priority: 'other', priority_raw: 'other', source: 'other', k8s_ns_name: '', k8s_pod_name: '' },
    value: 500,
  });
  assert.equal(all.find((s) => s.labels.rule === 'rule chosen by the sender 0')!.value, 2, 'a series kept goes on counting');
});
