import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { MemorySilenceStore, parseSilenceRequest, SILENCE_LIMITS, SilenceError, type SilenceRequest } from '../../src/routing/silences.ts';
import { Matcher } from '../../src/routing/matcher.ts';
import { RoutingTable } from '../../src/routing/table.ts';
import { decodeEvent } from '../../src/event/falco-event.ts';
import type { FalcoEvent } from '../../src/event/falco-event.ts';
import { loadConfig } from '../../src/config/load.ts';
import { outputTypes, defaultOutput } from '../../outputs/index.ts';
import { createLogger } from '../../src/log.ts';
import { tempDir } from '../helpers/router.ts';

const T0 = Date.parse('2026-11-29T18:00:00Z');
const OUTPUTS = ['slack', 'file', 'siem'];
const HOUR = 3_600_000;

function alert(rule: string, ns = 'dev-a', extra: Record<string, unknown> = {}): FalcoEvent {
  return decodeEvent(JSON.stringify({ rule, priority: 'Notice', output: 'x', hostname: 'node-1', source: 'syscall', time: '2026-11-29T18:00:00Z', output_fields: { 'k8s.ns.name': ns, ...extra } })) as FalcoEvent;
}

const quiet = () => {
  const lines: string[] = [];
  const logger = createLogger('debug', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  return { logger, lines };
};

function store(opts: { path?: string; retentionMs?: number; clock?: { t: number } } = {}) {
  const clock = opts.clock ?? { t: T0 };
  return new MemorySilenceStore({ path: opts.path ?? '', retentionMs: opts.retentionMs ?? 5 * 24 * HOUR, logger: quiet().logger, now: () => clock.t });
}

/** What ingest does with a stored alert: route it past the silences, and count each output a silence kept it from. */
function drop(s: MemorySilenceStore, ev: FalcoEvent, outputs: string[]): string[] {
  const table = new RoutingTable(outputs.map((name) => ({ name, minimumpriority: 0 })));
  const { targets, reasons, silenced } = table.route(ev, s);
  reasons.forEach((why, i) => why === 'silence' && s.count(silenced![i], outputs[i]));
  return targets;
}

const req = (over: Partial<SilenceRequest> = {}): SilenceRequest => ({
  matchers: ['rule="Terminal shell in container"', 'k8s.ns.name=~"dev-.*"'],
  startsAt: T0,
  endsAt: T0 + 2 * HOUR,
  comment: 'fixing the image',
  createdBy: 'alice',
  ...over,
});

const body = (over: Record<string, unknown> = {}) => ({ matchers: ['rule="Terminal shell in container"'], duration: '2h', comment: 'c', createdBy: 'b', ...over });

describe('validating a create request', () => {
  test('takes matchers as strings or Alertmanager objects, and stores them canonical', () => {
    const r = parseSilenceRequest(
      body({ matchers: ['rule = "Terminal shell in container"', { name: 'k8s.ns.name', value: 'dev-.*', isRegex: true }, { name: 'user.name', value: 'ci', isRegex: false, isEqual: false }] }),
      T0,
      OUTPUTS,
    );
    assert.deepEqual(r.matchers, ['rule="Terminal shell in container"', 'k8s.ns.name=~"dev-.*"', 'user.name!="ci"']);
  });

  test('starts now by default, or at a later startsAt; a start in the past means now, as Alertmanager', () => {
    assert.equal(parseSilenceRequest(body(), T0, OUTPUTS).startsAt, T0);
    assert.equal(parseSilenceRequest(body({ startsAt: '2026-11-29T19:00:00Z' }), T0, OUTPUTS).startsAt, T0 + HOUR);
    assert.equal(parseSilenceRequest(body({ startsAt: '2026-11-29T17:00:00+00:00' }), T0, OUTPUTS).startsAt, T0);
  });

  test('ends after its duration from the start, or at endsAt', () => {
    assert.equal(parseSilenceRequest(body({ duration: '30m', startsAt: '2026-11-29T19:00:00Z' }), T0, OUTPUTS).endsAt, T0 + 1.5 * HOUR);
    assert.equal(parseSilenceRequest(body({ duration: '500ms' }), T0, OUTPUTS).endsAt, T0 + 500);
    assert.equal(parseSilenceRequest(body({ duration: '7d' }), T0, OUTPUTS).endsAt, T0 + 7 * 24 * HOUR);
    assert.equal(parseSilenceRequest(body({ duration: undefined, endsAt: '2026-11-29T19:00:00.5+01:00' }), T0, OUTPUTS).endsAt, T0 + 500);
  });

  test('keeps the outputs it names, once each', () => {
    assert.deepEqual(parseSilenceRequest(body({ outputs: ['slack', 'slack'] }), T0, OUTPUTS).outputs, ['slack']);
    assert.equal(parseSilenceRequest(body(), T0, OUTPUTS).outputs, undefined);
  });

  const refused: Array<[string, unknown, RegExp]> = [
    ['a list', [], /the body must be a JSON object/],
    ['null', null, /the body must be a JSON object/],
    ['an id (updates are not supported)', body({ id: 'x' }), /cannot be changed; create a new one and expire the old one/],
    ['an unknown field', body({ matcher: [] }), /unknown field "matcher"; the fields are matchers, /],
    ['no matchers', body({ matchers: undefined }), /^matchers: required; a silence without matchers would silence every alert/],
    ['an empty matcher list', body({ matchers: [] }), /^matchers: must list at least one matcher/],
    ['matchers as a string', body({ matchers: 'rule="x"' }), /^matchers: must be a list/],
    ['a matcher that does not parse', body({ matchers: ['rule="x"', 'k8s.ns.name=="dev"'] }), /^matchers\[1\] `k8s\.ns\.name=="dev"`: unexpected '=' at column 13/],
    ['a bad regex', body({ matchers: ['rule=~"(a"'] }), /^matchers\[0\] `rule=~"\(a"`: invalid regular expression at column 7: missing closing \)/],
    ['a matcher of another type', body({ matchers: [42] }), /^matchers\[0\]: must be a string such as/],
    ['a matcher object without name', body({ matchers: [{ value: 'x' }] }), /^matchers\[0\]: "name" must be a non-empty string/],
    ['a matcher object with a stray field', body({ matchers: [{ name: 'rule', value: 'x', regex: true }] }), /^matchers\[0\]: unknown field "regex"/],
    ['matchers that all match an empty value', body({ matchers: ['k8s.ns.name!="prod"', 'rule=~".*"'] }), /at least one matcher must not match an empty value/],
    ['too many matchers', body({ matchers: Array.from({ length: 65 }, (_, i) => `rule="r${i}"`) }), /^matchers: at most 64/],
    ['both endsAt and duration', body({ endsAt: '2026-11-29T20:00:00Z' }), /^give endsAt or duration, not both/],
    ['neither endsAt nor duration', body({ duration: undefined }), /^endsAt or duration is required/],
    ['endsAt before startsAt', body({ duration: undefined, startsAt: '2026-11-29T20:00:00Z', endsAt: '2026-11-29T19:00:00Z' }), /^endsAt \(2026-11-29T19:00:00Z\) must be after startsAt \(2026-11-29T20:00:00Z\)/],
    ['endsAt in the past', body({ duration: undefined, endsAt: '2026-11-29T17:00:00Z' }), /^endsAt: 2026-11-29T17:00:00Z is in the past/],
    ['a time that is not RFC 3339', body({ startsAt: '29/11/2026' }), /^startsAt: must be an RFC 3339 time such as "2026-11-29T18:00:00Z"; "29\/11\/2026" is not one/],
    ['a date that does not exist', body({ duration: undefined, endsAt: '2027-02-30T00:00:00Z' }), /^endsAt: must be an RFC 3339 time/],
    ['a time as a number', body({ startsAt: 1795975200 }), /^startsAt: must be an RFC 3339 time .*, not number/],
    ['a duration as a number', body({ duration: 7200 }), /^duration: must be a string such as "2h"/],
    ['a duration that is not one', body({ duration: '2 hours' }), /^duration: "2 hours" is not a duration; write e\.g\. 2h/],
    ['a zero duration', body({ duration: '0s' }), /^duration: must be more than 0/],
    ['longer than a year', body({ duration: '366d' }), /^a silence lasts at most 365 days \(endsAt − startsAt\); this one lasts 366 days/],
    ['starting more than a year ahead', body({ startsAt: '2028-01-01T00:00:00Z' }), /^startsAt: at most 365 days ahead/],
    ['no comment', body({ comment: undefined }), /^comment: required/],
    ['a blank comment', body({ comment: '  ' }), /^comment: required/],
    ['a comment of another type', body({ comment: ['x'] }), /^comment: must be a string, not a list/],
    ['no createdBy', body({ createdBy: '' }), /^createdBy: required/],
    ['a huge comment', body({ comment: 'x'.repeat(10_001) }), /^comment: at most 10000 characters/],
    ['unknown outputs', body({ outputs: ['slack', 'pagerduty', 'teams'] }), /^outputs: no output named "pagerduty", "teams"; the outputs are slack, file, siem/],
    ['an empty output list', body({ outputs: [] }), /^outputs: must name at least one output; leave it out to silence every output/],
    ['outputs as a string', body({ outputs: 'slack' }), /^outputs: must be a list of output names, not a string/],
  ];
  for (const [what, b, message] of refused) {
    test(`refuses ${what}`, () => {
      assert.throws(
        () => parseSilenceRequest(b, T0, OUTPUTS),
        (err: unknown) => err instanceof SilenceError && message.test(err.message),
      );
    });
  }

  test('says which matcher and which column is wrong', () => {
    try {
      parseSilenceRequest(body({ matchers: ['rule="x"', 'k8s.ns.name=="dev"'] }), T0, OUTPUTS);
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof SilenceError);
      assert.deepEqual(err.where, { matcher: 1, column: 13 });
    }
  });
});

describe('applying silences at ingest', () => {
  test('with no silences, every output keeps the alert', async () => {
    const s = store();
    await s.start();
    assert.deepEqual(drop(s, alert('Terminal shell in container'), ['slack', 'file']), ['slack', 'file']);
    assert.equal(s.silencedBy(alert('x'), 'slack'), undefined);
    await s.close();
  });

  test('drops the outputs of an alert that satisfies every matcher, and only while the silence is in effect', async () => {
    const clock = { t: T0 };
    const s = store({ clock });
    await s.start();
    const sil = await s.create(req({ startsAt: T0 + HOUR, endsAt: T0 + 2 * HOUR }));
    const shell = alert('Terminal shell in container', 'dev-a');
    assert.deepEqual(drop(s, alert('Terminal shell in container', 'dev-a'), ['slack']), ['slack'], 'pending: not yet');
    clock.t = T0 + HOUR;
    assert.deepEqual(drop(s, alert('Terminal shell in container', 'dev-a'), ['slack', 'file']), [], 'active');
    assert.equal(s.silencedBy(shell, 'slack')?.id, sil.id);
    assert.deepEqual(drop(s, alert('Terminal shell in container', 'prod'), ['slack']), ['slack'], 'one matcher fails');
    assert.deepEqual(drop(s, alert('Write below etc', 'dev-a'), ['slack']), ['slack'], 'the other fails');
    clock.t = T0 + 2 * HOUR;
    assert.deepEqual(drop(s, alert('Terminal shell in container', 'dev-a'), ['slack']), ['slack'], 'ended: on time, before any refresh');
    await s.close();
  });

  test('a silence naming outputs drops only those', async () => {
    const s = store();
    await s.start();
    await s.create(req({ outputs: ['slack', 'siem'] }));
    assert.deepEqual(drop(s, alert('Terminal shell in container'), ['slack', 'file', 'siem']), ['file']);
    await s.close();
  });

  test('"Test rule" is never silenced', async () => {
    const s = store();
    await s.start();
    await s.create(req({ matchers: ['rule="Test rule"'] }));
    assert.deepEqual(drop(s, alert('Test rule'), ['slack']), ['slack']);
    assert.equal(s.silencedBy(alert('Test rule'), 'slack')?.matchers[0], 'rule="Test rule"', 'route-test can still say it would match');
    await s.close();
  });

  test("evaluates each silence's matchers once per alert, whatever the number of outputs", async () => {
    const s = store();
    await s.start();
    for (let i = 0; i < 5; i++) await s.create(req({ matchers: [`rule="rule ${i}"`] }));
    await s.create(req({ matchers: ['rule="Terminal shell in container"'], outputs: ['siem'] }));
    const original = Matcher.prototype.matches;
    let calls = 0;
    Matcher.prototype.matches = function (this: Matcher, ev: FalcoEvent) {
      calls++;
      return original.call(this, ev);
    };
    try {
      const outputs = Array.from({ length: 20 }, (_, i) => `o${i}`);
      assert.deepEqual(drop(s, alert('Terminal shell in container'), [...outputs, 'siem']), outputs);
      assert.equal(calls, 6);
    } finally {
      Matcher.prototype.matches = original;
    }
    await s.close();
  });

  test('counts what each silence kept back, per output', async () => {
    const s = store();
    await s.start();
    const a = await s.create(req({ matchers: ['rule="Terminal shell in container"'] }));
    const b = await s.create(req({ matchers: ['rule="Write below etc"'], outputs: ['slack'] }));
    for (let i = 0; i < 3; i++) drop(s, alert('Terminal shell in container'), ['slack', 'file']);
    drop(s, alert('Write below etc'), ['slack', 'file']);
    assert.deepEqual((await s.get(a.id))?.silenced, { slack: 3, file: 3 });
    assert.deepEqual((await s.get(b.id))?.silenced, { slack: 1 });
    await s.close();
  });

  test('an alert two silences cover is counted once, for the older', async () => {
    const s = store();
    await s.start();
    const older = await s.create(req({ matchers: ['rule="Terminal shell in container"'] }));
    const newer = await s.create(req({ matchers: ['k8s.ns.name="dev-a"'] }));
    drop(s, alert('Terminal shell in container'), ['slack']);
    assert.deepEqual((await s.get(older.id))?.silenced, { slack: 1 });
    assert.deepEqual((await s.get(newer.id))?.silenced, {});
    await s.close();
  });
});

describe('the memory store', () => {
  test('lists silences by state: active, pending, expired; DELETE expires, and again changes nothing', async () => {
    const clock = { t: T0 };
    const s = store({ clock });
    await s.start();
    const active = await s.create(req());
    const pending = await s.create(req({ startsAt: T0 + HOUR }));
    const gone = await s.create(req({ endsAt: T0 + 1000 }));
    clock.t = T0 + 2000;
    assert.deepEqual(
      (await s.list()).map((v) => [v.id, v.status.state]),
      [
        [active.id, 'active'],
        [pending.id, 'pending'],
        [gone.id, 'expired'],
      ],
    );
    const ended = await s.expire(pending.id);
    assert.equal(ended?.status.state, 'expired');
    assert.equal(ended?.startsAt, new Date(T0 + 2000).toISOString(), 'a pending silence never starts');
    assert.equal(ended?.endsAt, new Date(T0 + 2000).toISOString());
    clock.t += 5000;
    assert.deepEqual(await s.expire(pending.id), ended, 'expiring an expired silence leaves it as it was');
    assert.equal(await s.expire('no-such-id'), undefined);
    assert.deepEqual(s.states(), { active: 1, pending: 0, expired: 2 });
    await s.close();
  });

  test('removes expired silences after the retention', async () => {
    const clock = { t: T0 };
    const s = store({ clock, retentionMs: HOUR });
    await s.start();
    const sil = await s.create(req({ endsAt: T0 + 1000 }));
    clock.t = T0 + 1000 + HOUR - 1;
    await (s as unknown as { tick(): Promise<void> }).tick();
    assert.equal((await s.get(sil.id))?.status.state, 'expired');
    clock.t += 60_000;
    await (s as unknown as { tick(): Promise<void> }).tick();
    assert.equal(await s.get(sil.id), undefined);
    await s.close();
  });

  test('refuses more than 1,000 silences active or pending', async () => {
    const s = store();
    await s.start();
    for (let i = 0; i < 1000; i++) await s.create(req({ matchers: [`rule="r${i}"`] }));
    await assert.rejects(s.create(req()), /already 1000 silences active or pending \(at most 1000\); expire some first/);
    await s.close();
  });

  test(`keeps at most ${SILENCE_LIMITS.kept} silences, expired included: a create beyond that removes those that ended first`, async () => {
    const path = join(tempDir(), 'silences.json');
    const clock = { t: T0 };
    const n = SILENCE_LIMITS.kept;
    // Ended in the last few hours, in shuffled order: old-0 ended first.
    const ended = (i: number) => {
      const at = new Date(T0 - (n - i) * 1000).toISOString();
      return { id: `old-${i}`, matchers: ['rule="x"'], startsAt: at, endsAt: at, comment: 'c', createdBy: 'b', createdAt: at, updatedAt: at, silenced: {} };
    };
    const order = [...Array(n).keys()].sort((a, b) => ((a * 7919) % n) - ((b * 7919) % n));
    writeFileSync(path, JSON.stringify({ silences: order.map(ended) }));
    const s = store({ path, clock });
    await s.start();
    const first = await s.create(req());
    const second = await s.create(req());
    const ids = (await s.list()).map((v) => v.id);
    assert.equal(ids.length, n);
    assert.ok(!ids.includes('old-0') && !ids.includes('old-1'), 'the two that ended first are gone');
    assert.ok(ids.includes('old-2') && ids.includes(first.id) && ids.includes(second.id));
    assert.deepEqual(s.states(), { active: 2, pending: 0, expired: n - 2 });
    await s.close();
    assert.equal((JSON.parse(readFileSync(path, 'utf8')) as { silences: unknown[] }).silences.length, n, 'the file too');
  });

  test('with a path, keeps silences and counts in the file, written whole (temp file, then rename)', async () => {
    const dir = tempDir();
    const path = join(dir, 'silences.json');
    const clock = { t: T0 };
    const a = store({ path, clock });
    await a.start();
    assert.ok(existsSync(path), 'written at start, so an unwritable path fails the start');
    const sil = await a.create(req());
    drop(a, alert('Terminal shell in container'), ['slack']);
    await a.close();
    assert.deepEqual(readdirSync(dir), ['silences.json'], 'no temporary file left');
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { silences: Array<{ id: string; silenced: unknown }> };
    assert.deepEqual(doc.silences.map((x) => [x.id, x.silenced]), [[sil.id, { slack: 1 }]]);

    const b = store({ path, clock });
    await b.start();
    assert.deepEqual(drop(b, alert('Terminal shell in container'), ['slack']), []);
    assert.deepEqual((await b.get(sil.id))?.silenced, { slack: 2 });
    await b.close();
  });

  test('a corrupt file stops the start, naming the file and what is wrong', async () => {
    const path = join(tempDir(), 'silences.json');
    for (const [content, why] of [
      ['{"silences": [', /is not a valid silences file \(.*JSON/],
      ['{"items": []}', /is not a valid silences file \(no "silences" list\)/],
      ['{"silences": [{"id": "x", "matchers": ["rule=="]}]}', /is not a valid silences file \(silences\[0\]: matcher `rule==`: unexpected/],
    ] as const) {
      writeFileSync(path, content);
      await assert.rejects(store({ path }).start(), (err: Error) => err.message.startsWith(`silences.path: ${path} is not a valid silences file`) && why.test(err.message));
    }
  });

  test('an unwritable path stops the start', async () => {
    await assert.rejects(store({ path: join(tempDir(), 'missing-dir', 'silences.json') }).start(), /silences\.path: cannot write .*missing-dir\/silences\.json/);
  });
});

test('silences.path and silences.retention: defaults, days as a unit, and env', () => {
  const load = (env: Record<string, string>) => loadConfig({ env, types: outputTypes, defaultOutput });
  assert.deepEqual(load({}).silences, { path: '', retention: 5 * 24 * HOUR });
  assert.deepEqual(load({ SILENCES_PATH: '/var/lib/router/silences.json', SILENCES_RETENTION: '1.5d' }).silences, { path: '/var/lib/router/silences.json', retention: 36 * HOUR });
  assert.throws(() => load({ SILENCES_RETENTION: '5 days' }), /silences\.retention: "5 days" is not a duration/);
});
