/**
 * Silences through the whole router: the API over HTTP, alerts accepted but kept from the outputs
 * a silence covers, counted, and silences that outlive a restart (a file with the memory driver,
 * Redis with the Redis driver, where every replica sees them).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestRouter, tempDir, type TestRouter } from '../helpers/router.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { runCli, spawnRouter } from '../helpers/process.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { freePort } from '../helpers/ports.ts';
import { startHttpSink, type HttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { decodeEvent, type FalcoEvent } from '../../src/event/falco-event.ts';
import { Redis } from 'ioredis';
import { SILENCE_LIMITS } from '../../src/routing/silences.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

/** A shell in a container of namespace `ns`, with the marker test.n. */
function shell(n: number, ns = 'dev-payments', rule = 'Terminal shell in container'): string {
  return JSON.stringify({
    output: `A shell was spawned in a container (ns=${ns} n=${n})`,
    priority: 'Notice',
    rule,
    time: '2026-11-29T18:00:00.123456789Z',
    source: 'syscall',
    hostname: 'node-1',
    output_fields: { 'k8s.ns.name': ns, 'proc.cmdline': 'bash -i', 'test.n': n },
  });
}

const SILENCE = {
  matchers: ['rule="Terminal shell in container"', 'k8s.ns.name=~"dev-.*"'],
  duration: '2h',
  comment: 'image fix in progress (JIRA-123)',
  createdBy: 'alice@example.com',
};

interface Answer {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}

// The silence API is off without a token: every router here has the operators' (auth.apitoken),
// which leaves POST / open, as Falco without a client certificate needs.
const TOKEN = 'operator-token-1234';
const BEARER = { authorization: `Bearer ${TOKEN}` };

const router = (yaml: string): Promise<TestRouter> => startTestRouter(`auth: { apitoken: ${TOKEN} }\n${yaml}`);

/** A request to the router; with the token unless `headers` is given. */
async function api(r: { url: string }, method: string, path: string, body?: unknown, headers: Record<string, string> = BEARER): Promise<Answer> {
  const res = await fetch(`${r.url}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

const create = async (r: { url: string }, body: unknown = SILENCE): Promise<string> => {
  const res = await api(r, 'POST', '/api/v1/silences', body);
  assert.equal(res.status, 201, JSON.stringify(res.json));
  return res.json.id as string;
};

/** Markers of the alerts an output (a path of the sink) received. */
const received = (sink: HttpSink, output: string) =>
  sink.requests.filter((q) => q.url === `/${output}` && q.status === 200).map((q) => (JSON.parse(q.body) as { output_fields: { 'test.n': number } }).output_fields['test.n']).sort((a, b) => a - b);

/** Sends a last alert no silence covers to every output and waits for it: what was sent before has been delivered by then. */
async function settled(r: TestRouter, sink: HttpSink, outputs: string[], n = 9999) {
  assert.equal((await r.post(shell(n, 'prod'))).status, 200);
  await waitFor(() => outputs.every((o) => received(sink, o).includes(n)), 10_000, `alert ${n} on ${outputs.join(', ')}`);
  await delay(100);
}

const webhooks = (sink: HttpSink, names: string[]) => names.map((n) => `  - { name: ${n}, type: webhook, address: "${sink.url.replace(/\/hook$/, '')}/${n}" }`).join('\n');
const redisQueue = (prefix: string) => `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "${prefix}", lockduration: 2s, stalledinterval: 1s } }`;

describe('the silence API', () => {
  let sink: HttpSink;
  let r: TestRouter;
  before(async () => {
    sink = await startHttpSink();
    r = await router(`outputs:\n${webhooks(sink, ['slack-dev', 'siem'])}\n`);
  });
  after(async () => {
    await r.stop();
    await sink.close();
  });

  test('creates a silence from matcher strings or from Alertmanager objects, and shows it', async () => {
    const res = await api(r, 'POST', '/api/v1/silences', SILENCE);
    assert.equal(res.status, 201);
    assert.match(res.json.id, /^[0-9a-f-]{36}$/);
    assert.equal(res.headers.get('location'), `/api/v1/silences/${res.json.id}`);
    const objects = await create(r, {
      ...SILENCE,
      matchers: [
        { name: 'rule', value: 'Terminal shell in container', isRegex: false, isEqual: true },
        { name: 'k8s.ns.name', value: 'dev-.*', isRegex: true },
      ],
      outputs: ['slack-dev'],
    });
    const one = (await api(r, 'GET', `/api/v1/silences/${objects}`)).json;
    assert.deepEqual(one.matchers, ['rule="Terminal shell in container"', 'k8s.ns.name=~"dev-.*"']);
    assert.deepEqual(one.status, { state: 'active' });
    assert.deepEqual(one.outputs, ['slack-dev']);
    assert.deepEqual(one.silenced, {});
    assert.equal(one.comment, SILENCE.comment);
    assert.equal(one.createdBy, SILENCE.createdBy);
    assert.equal(Date.parse(one.endsAt) - Date.parse(one.startsAt), 2 * 3_600_000);
    for (const k of ['startsAt', 'endsAt', 'createdAt', 'updatedAt']) assert.match(one[k], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const id of [res.json.id, objects]) assert.equal((await api(r, 'DELETE', `/api/v1/silences/${id}`)).status, 200);
  });

  test('lists silences active, then pending, then expired', async () => {
    const active = await create(r);
    const pending = await create(r, { ...SILENCE, startsAt: new Date(Date.now() + 3_600_000).toISOString() });
    const expired = await create(r);
    await api(r, 'DELETE', `/api/v1/silences/${expired}`);
    const list = (await api(r, 'GET', '/api/v1/silences')).json.silences as Array<{ id: string; status: { state: string } }>;
    const mine = list.filter((s) => [active, pending, expired].includes(s.id)).map((s) => [s.id, s.status.state]);
    assert.deepEqual(mine, [
      [active, 'active'],
      [pending, 'pending'],
      [expired, 'expired'],
    ]);
    const ready = (await api(r, 'GET', '/ready')).json;
    assert.deepEqual(ready.silences, { active: 1 });
    assert.equal(await r.metric('falco_router_silences', { state: 'pending' }), 1);
    for (const id of [active, pending]) await api(r, 'DELETE', `/api/v1/silences/${id}`);
  });

  test('DELETE expires a silence, which stays listed; again it answers 200 unchanged; an unknown id is 404', async () => {
    const id = await create(r, { ...SILENCE, startsAt: new Date(Date.now() + 60_000).toISOString() });
    const first = await api(r, 'DELETE', `/api/v1/silences/${id}`);
    assert.equal(first.status, 200);
    assert.equal(first.json.status.state, 'expired');
    assert.equal(first.json.startsAt, first.json.endsAt, 'a pending silence never starts');
    await delay(5);
    const again = await api(r, 'DELETE', `/api/v1/silences/${id}`);
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, first.json);
    assert.equal((await api(r, 'GET', `/api/v1/silences/${id}`)).json.status.state, 'expired');
    const unknown = await api(r, 'DELETE', '/api/v1/silences/4b1d6b0e-0000-4000-8000-000000000000');
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.json, { error: 'no silence with id "4b1d6b0e-0000-4000-8000-000000000000"' });
    assert.equal((await api(r, 'GET', '/api/v1/silences/nope')).status, 404);
  });

  const bad: Array<[string, unknown, number, RegExp, Record<string, unknown>?]> = [
    ['an empty body', '', 400, /^the body must be a JSON silence/],
    ['bad JSON', '{"matchers": [', 400, /^the body is not valid JSON/],
    ['a body that is not an object', '["rule=\\"x\\""]', 400, /^the body must be a JSON object/],
    ['no matchers', { ...SILENCE, matchers: undefined }, 400, /^matchers: required; a silence without matchers would silence every alert/],
    ['an empty matcher list', { ...SILENCE, matchers: [] }, 400, /^matchers: must list at least one matcher/],
    ['a bad matcher', { ...SILENCE, matchers: ['rule="x"', 'k8s.ns.name=="dev"'] }, 400, /^matchers\[1\] `k8s\.ns\.name=="dev"`: unexpected '=' at column 13/, { matcher: 1, column: 13 }],
    ['matchers that match empty values only', { ...SILENCE, matchers: ['k8s.ns.name!="prod"'] }, 400, /at least one matcher must not match an empty value/],
    ['endsAt before startsAt', { ...SILENCE, duration: undefined, startsAt: '2099-01-02T00:00:00Z', endsAt: '2099-01-01T00:00:00Z' }, 400, /startsAt: at most 365 days ahead|must be after startsAt/],
    ['endsAt before a near startsAt', { ...SILENCE, duration: undefined, startsAt: new Date(Date.now() + 7_200_000).toISOString(), endsAt: new Date(Date.now() + 3_600_000).toISOString() }, 400, /^endsAt \(.*\) must be after startsAt/],
    ['an unknown output', { ...SILENCE, outputs: ['slack-dev', 'pagerduty'] }, 400, /^outputs: no output named "pagerduty"; the outputs are slack-dev, siem/],
    ['both duration and endsAt', { ...SILENCE, endsAt: new Date(Date.now() + 3_600_000).toISOString() }, 400, /^give endsAt or duration, not both/],
    ['neither duration nor endsAt', { ...SILENCE, duration: undefined }, 400, /^endsAt or duration is required/],
    ['a silence of more than a year', { ...SILENCE, duration: '400d' }, 400, /^a silence lasts at most 365 days/],
    ['matchers of the wrong type', { ...SILENCE, matchers: 'rule="x"' }, 400, /^matchers: must be a list/],
    ['a duration of the wrong type', { ...SILENCE, duration: 7200 }, 400, /^duration: must be a string/],
    ['a startsAt of the wrong type', { ...SILENCE, startsAt: 1795975200 }, 400, /^startsAt: must be an RFC 3339 time/],
    ['a comment of the wrong type', { ...SILENCE, comment: { text: 'x' } }, 400, /^comment: must be a string, not an object/],
    ['no createdBy', { ...SILENCE, createdBy: undefined }, 400, /^createdBy: required/],
    ['outputs of the wrong type', { ...SILENCE, outputs: 'siem' }, 400, /^outputs: must be a list of output names/],
    ['an unknown field', { ...SILENCE, filter: 'x' }, 400, /^unknown field "filter"/],
    ['an id (an update)', { ...SILENCE, id: 'x' }, 400, /^"id": a silence cannot be changed/],
    ['a body over 64 KiB', { ...SILENCE, comment: 'x'.repeat(70_000) }, 413, /^the body is over 65536 bytes/],
  ];
  for (const [what, body, status, message, extra] of bad) {
    test(`refuses ${what} with ${status} and says why`, async () => {
      const res = await api(r, 'POST', '/api/v1/silences', body);
      assert.equal(res.status, status, JSON.stringify(res.json));
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.match(res.json.error, message);
      if (extra) for (const [k, v] of Object.entries(extra)) assert.equal(res.json[k], v, k);
    });
  }

  test('other methods on the silence URLs are 405, never read as alerts', async () => {
    const before = await r.metric('falcosecurity_falcosidekick_inputs_total', { status: 'accepted' });
    const res = await api(r, 'POST', '/api/v1/silences/abc', shell(1));
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, DELETE');
    assert.equal((await api(r, 'PUT', '/api/v1/silences', SILENCE)).status, 405);
    assert.equal(await r.metric('falcosecurity_falcosidekick_inputs_total', { status: 'accepted' }), before);
  });
});

describe('access', () => {
  test('without auth.token the silence API is off: every endpoint answers 403 and says how to turn it on; nothing is created', async () => {
    const r = await startTestRouter('');
    try {
      for (const [method, path, body] of [
        ['POST', '/api/v1/silences', SILENCE],
        ['GET', '/api/v1/silences'],
        ['GET', '/api/v1/silences/4b1d6b0e-0000-4000-8000-000000000000'],
        ['DELETE', '/api/v1/silences/4b1d6b0e-0000-4000-8000-000000000000'],
        ['POST', '/%61pi/v1/silences', SILENCE],
      ] as const) {
        const res = await api(r, method, path, body, {});
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.match(res.json.error, /^the silence API is off: .*Set auth\.apitoken \(AUTH_APITOKEN, or a file in auth\.apitokenfile\).*or auth\.token \(AUTH_TOKEN\)/, `${method} ${path}`);
      }
      assert.deepEqual(await r.silences.list(), []);
      assert.equal((await r.post(shell(1))).status, 200, 'alerts are still taken without a token');
    } finally {
      await r.stop();
    }
  });

  test('with auth.apitoken every endpoint needs it: 401 without it, with another, or with auth.token; a refused DELETE changes nothing; POST / stays open', async () => {
    const r = await startTestRouter(`auth: { apitoken: ${TOKEN}, token: ingest-token-5678 }\n`);
    try {
      assert.equal((await api(r, 'POST', '/api/v1/silences', SILENCE, {})).status, 401);
      assert.equal((await api(r, 'GET', '/api/v1/silences', undefined, {})).status, 401);
      assert.equal((await api(r, 'GET', '/%61pi/v1/silences', undefined, {})).status, 401, 'a percent-encoded path is guarded too');
      const wrong = await api(r, 'POST', '/api/v1/silences', SILENCE, { authorization: 'Bearer wrong' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.headers.get('www-authenticate'), 'Bearer');
      assert.match(wrong.json.error, /^send Authorization: Bearer <token> \(auth\.apitoken, or auth\.token when auth\.apitoken is not set\)/);
      assert.ok(!JSON.stringify(wrong.json).includes(TOKEN), 'the token is not in the answer');
      assert.equal((await api(r, 'GET', '/api/v1/silences', undefined, { authorization: 'Bearer ingest-token-5678' })).status, 401, "the senders' token does not open it");
      const id = await create(r);
      assert.equal((await api(r, 'GET', `/api/v1/silences/${id}`, undefined, {})).status, 401);
      assert.equal((await api(r, 'DELETE', `/api/v1/silences/${id}`, undefined, {})).status, 401);
      assert.equal((await api(r, 'GET', `/api/v1/silences/${id}`)).json.status.state, 'active', 'the refused DELETE changed nothing');
      assert.equal((await api(r, 'DELETE', `/api/v1/silences/${id}`)).status, 200);
      assert.equal(await r.metric('falco_router_events_rejected_total', { reason: 'unauthorized' }), 7);
    } finally {
      await r.stop();
    }
    const open = await router('');
    try {
      assert.equal((await open.post(shell(1))).status, 200, 'with only auth.apitoken, Falco posts without a token');
    } finally {
      await open.stop();
    }
  });

  test('without auth.apitoken, auth.token opens the silence API (and POST / then needs it too)', async () => {
    const r = await startTestRouter(`auth: { token: ${TOKEN} }\n`);
    try {
      assert.equal((await api(r, 'GET', '/api/v1/silences', undefined, {})).status, 401);
      assert.equal((await api(r, 'GET', '/api/v1/silences')).status, 200);
      await create(r);
      assert.equal((await r.post(shell(1))).status, 401);
      assert.equal((await r.post(shell(1), { headers: BEARER })).status, 200);
    } finally {
      await r.stop();
    }
  });

  test('with auth.apitoken, the dead-letter API and the error texts of /ready need it, and auth.token or a missing token do not open them', async () => {
    const r = await startTestRouter(`auth: { apitoken: ${TOKEN}, token: ingest-token-5678 }\noutputs:\n  - { name: hook, type: webhook, address: "http://127.0.0.1:9/x" }\n`);
    try {
      for (const headers of [{}, { authorization: 'Bearer ingest-token-5678' }] as Array<Record<string, string>>) {
        const res = await api(r, 'GET', '/api/v1/deadletters', undefined, headers);
        assert.equal(res.status, 401);
        assert.match(String(res.json), /auth\.apitoken/);
      }
      assert.equal((await api(r, 'GET', '/api/v1/deadletters')).status, 200);
      assert.equal((await r.post(shell(1), { headers: { authorization: 'Bearer ingest-token-5678' } })).status, 200);
      const hook = async (headers: Record<string, string>) =>
        ((await (await fetch(`${r.url}/ready`, { headers })).json()) as { outputs: Array<{ name: string; lastError?: { message?: string } }> }).outputs.find((o) => o.name === 'hook')!;
      await waitFor(async () => (await hook(BEARER)).lastError?.message !== undefined, 10_000, 'the delivery error');
      assert.equal((await hook({ authorization: 'Bearer ingest-token-5678' })).lastError?.message, undefined, "the senders' token does not show error texts");
      assert.match((await hook(BEARER)).lastError!.message!, /ECONNREFUSED/);
    } finally {
      await r.stop();
    }
  });
});

for (const driver of ['memory', 'redis'] as const) {
  describe(`a silence in effect (${driver} driver)`, () => {
    let sink: HttpSink;
    let r: TestRouter;
    before(async () => {
      sink = await startHttpSink();
      const queue = driver === 'redis' ? `${redisQueue(`eff-${randomUUID().slice(0, 8)}`)}\n` : '';
      r = await router(`${queue}outputs:\n${webhooks(sink, ['slack-dev', 'siem', 'archive'])}\n`);
    });
    after(async () => {
      await r.stop();
      await sink.close();
    });

    test('keeps matching alerts from every output, accepts them (200), and counts them per output', async () => {
      const id = await create(r);
      for (let n = 1; n <= 3; n++) assert.equal((await r.post(shell(n))).status, 200);
      assert.equal((await r.post(shell(4, 'prod'))).status, 200, 'one matcher fails: not silenced');
      assert.equal((await r.post(shell(5, 'dev-web', 'Write below etc'))).status, 200, 'the other fails');
      await settled(r, sink, ['slack-dev', 'siem', 'archive']);
      for (const o of ['slack-dev', 'siem', 'archive']) assert.deepEqual(received(sink, o), [4, 5, 9999], o);
      assert.deepEqual((await api(r, 'GET', `/api/v1/silences/${id}`)).json.silenced, { 'slack-dev': 3, siem: 3, archive: 3 });
      assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'siem', reason: 'silence' }), 3);
      assert.equal(await r.metric('falcosecurity_falcosidekick_inputs_total', { status: 'accepted' }), 6);
      await api(r, 'DELETE', `/api/v1/silences/${id}`);
      sink.requests.length = 0;
    });

    test('with outputs, keeps alerts from those only; the others still get them', async () => {
      const id = await create(r, { ...SILENCE, outputs: ['slack-dev'] });
      for (let n = 1; n <= 3; n++) assert.equal((await r.post(shell(n))).status, 200);
      await settled(r, sink, ['slack-dev', 'siem', 'archive']);
      assert.deepEqual(received(sink, 'slack-dev'), [9999]);
      assert.deepEqual(received(sink, 'siem'), [1, 2, 3, 9999]);
      assert.deepEqual(received(sink, 'archive'), [1, 2, 3, 9999]);
      assert.deepEqual((await api(r, 'GET', `/api/v1/silences/${id}`)).json.silenced, { 'slack-dev': 3 });
      await api(r, 'DELETE', `/api/v1/silences/${id}`);
      sink.requests.length = 0;
    });

    test('"Test rule" (POST /test) is never silenced', async () => {
      const id = await create(r, { ...SILENCE, matchers: ['rule="Test rule"'] });
      assert.equal((await r.post('', { path: '/test' })).status, 200);
      await waitFor(() => ['slack-dev', 'siem', 'archive'].every((o) => sink.requests.some((q) => q.url === `/${o}` && q.body.includes('Test rule'))), 10_000, 'the test alert everywhere');
      await api(r, 'DELETE', `/api/v1/silences/${id}`);
      sink.requests.length = 0;
    });

    test('ends on time: an alert after endsAt is delivered', async () => {
      const id = await create(r, { ...SILENCE, duration: '1s', outputs: ['siem'] });
      const { endsAt } = (await api(r, 'GET', `/api/v1/silences/${id}`)).json;
      assert.equal((await r.post(shell(1))).status, 200);
      await delay(Date.parse(endsAt) - Date.now() + 20);
      assert.equal((await r.post(shell(2))).status, 200);
      await settled(r, sink, ['siem']);
      assert.deepEqual(received(sink, 'siem'), [2, 9999]);
      assert.equal((await api(r, 'GET', `/api/v1/silences/${id}`)).json.status.state, 'expired');
      sink.requests.length = 0;
    });

    test('ends when DELETE expires it', async () => {
      const id = await create(r, { ...SILENCE, outputs: ['siem'] });
      assert.equal((await r.post(shell(1))).status, 200);
      assert.equal((await api(r, 'DELETE', `/api/v1/silences/${id}`)).status, 200);
      assert.equal((await r.post(shell(2))).status, 200);
      await settled(r, sink, ['siem']);
      assert.deepEqual(received(sink, 'siem'), [2, 9999]);
      sink.requests.length = 0;
    });

    test('each create and expire is logged once at info, as one JSON line: the silence, who asked, what and until when', async () => {
      const createdBy = 'mallory"}\n{"level":30,"msg":"silence expired","silence":"forged"}';
      const id = await create(r, { ...SILENCE, createdBy, outputs: ['siem'] });
      const { startsAt, endsAt } = (await api(r, 'GET', `/api/v1/silences/${id}`)).json;
      const ended = (await api(r, 'DELETE', `/api/v1/silences/${id}`)).json;
      assert.equal((await api(r, 'DELETE', `/api/v1/silences/${id}`)).status, 200, 'already expired: answered, not logged again');
      const lines = r.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
      const audit = lines.filter((l) => l.silence === id || l.silence === 'forged');
      assert.deepEqual(
        audit.map(({ level, msg, silence, createdBy, matchers, outputs, startsAt, endsAt, client }) => ({ level, msg, silence, createdBy, matchers, outputs, startsAt, endsAt, client })),
        [
          { level: 30, msg: 'silence created', silence: id, createdBy, matchers: SILENCE.matchers, outputs: ['siem'], startsAt, endsAt, client: '127.0.0.1' },
          { level: 30, msg: 'silence expired', silence: id, createdBy, matchers: SILENCE.matchers, outputs: ['siem'], startsAt, endsAt: ended.endsAt, client: '127.0.0.1' },
        ],
      );
      assert.ok(!r.logs.some((l) => l.includes(SILENCE.comment)), 'the comment is not logged');
    });

    test('a pending silence has no effect until its startsAt', async () => {
      const startsAt = new Date(Date.now() + 1000).toISOString();
      const id = await create(r, { ...SILENCE, startsAt, outputs: ['siem'] });
      assert.equal((await r.post(shell(1))).status, 200);
      await delay(Date.parse(startsAt) - Date.now() + 20);
      assert.equal((await api(r, 'GET', `/api/v1/silences/${id}`)).json.status.state, 'active');
      assert.equal((await r.post(shell(2))).status, 200);
      await settled(r, sink, ['siem']);
      assert.deepEqual(received(sink, 'siem'), [1, 9999]);
      await api(r, 'DELETE', `/api/v1/silences/${id}`);
      sink.requests.length = 0;
    });
  });
}

describe('memory driver', () => {
  test('with silences.path, silences and their counts survive a restart', async () => {
    const sink = await startHttpSink();
    const path = join(tempDir(), 'silences.json');
    const yaml = `silences: { path: "${path}" }\noutputs:\n${webhooks(sink, ['siem', 'archive'])}\n`;
    const first = await router(yaml);
    let id: string;
    try {
      id = await create(first, { ...SILENCE, outputs: ['siem'] });
      assert.equal((await first.post(shell(1))).status, 200);
    } finally {
      await first.stop();
    }
    assert.equal((JSON.parse(readFileSync(path, 'utf8')) as { silences: unknown[] }).silences.length, 1);
    const second = await router(yaml);
    try {
      assert.equal((await second.post(shell(2))).status, 200, 'the first alert after the start');
      await settled(second, sink, ['siem', 'archive']);
      assert.deepEqual(received(sink, 'siem'), [9999]);
      assert.deepEqual(received(sink, 'archive'), [1, 2, 9999]);
      const after = (await api(second, 'GET', `/api/v1/silences/${id}`)).json;
      assert.equal(after.status.state, 'active');
      assert.deepEqual(after.silenced, { siem: 2 });
    } finally {
      await second.stop();
      await sink.close();
    }
  });

  test('without silences.path, a restart forgets silences (documented)', async () => {
    const first = await router('');
    await create(first);
    await first.stop();
    const second = await router('');
    try {
      assert.deepEqual((await api(second, 'GET', '/api/v1/silences')).json, { silences: [] });
    } finally {
      await second.stop();
    }
  });

  test('a corrupt silences file stops the start with a message naming it', async () => {
    const dir = tempDir();
    const path = join(dir, 'silences.json');
    writeFileSync(path, '{"silences": [{"id": "x"');
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `silences: { path: "${path}" }\n`);
    const res = await runCli(['-c', config], { LISTENPORT: String(await freePort()) });
    assert.equal(res.code, 1);
    assert.match(res.stdout + res.stderr, new RegExp(`cannot start: silences\\.path: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a valid silences file`));
  });
});

describe('Redis driver', () => {
  test('a silence created on replica A takes effect on replica B within a second; B lists it at once; counts add up across replicas; DELETE on A ends it on B', async (t) => {
    const sink = await startHttpSink();
    const yaml = `${redisQueue(`sil-${randomUUID().slice(0, 8)}`)}\noutputs:\n${webhooks(sink, ['slack-dev', 'archive'])}\n`;
    const [a, b] = [await router(yaml), await router(yaml)];
    try {
      const created = Date.now();
      const id = await create(a, { ...SILENCE, outputs: ['slack-dev'] });
      assert.equal((await api(b, 'GET', `/api/v1/silences/${id}`)).status, 200, "B's API reads Redis");
      // B counts a silenced alert at ingest, before answering: the first one it counts is the effect.
      let n = 0;
      await waitFor(
        async () => {
          assert.equal((await b.post(shell(++n))).status, 200);
          return (await b.metric('falco_router_events_filtered_total', { output: 'slack-dev', reason: 'silence' })) > 0;
        },
        1000,
        'the silence to take effect on B',
      );
      const effectMs = Date.now() - created;
      for (let k = 0; k < 5; k++) assert.equal((await b.post(shell(++n))).status, 200);
      for (let k = 0; k < 5; k++) assert.equal((await a.post(shell(++n))).status, 200);
      const silencedOnB = await b.metric('falco_router_events_filtered_total', { output: 'slack-dev', reason: 'silence' });
      assert.equal(silencedOnB, 6);
      // Counts reach Redis once a second; either replica then shows the sum.
      await waitFor(async () => (await api(b, 'GET', `/api/v1/silences/${id}`)).json.silenced['slack-dev'] === 11, 5000, 'the counts of both replicas');

      assert.equal((await api(a, 'DELETE', `/api/v1/silences/${id}`)).status, 200);
      await waitFor(
        async () => {
          const before = await b.metric('falco_router_events_filtered_total', { output: 'slack-dev', reason: 'silence' });
          assert.equal((await b.post(shell(++n))).status, 200);
          return (await b.metric('falco_router_events_filtered_total', { output: 'slack-dev', reason: 'silence' })) === before;
        },
        1000,
        'the expiry to take effect on B',
      );
      await settled(b, sink, ['slack-dev', 'archive']);
      const silenced = (await a.metric('falco_router_events_filtered_total', { reason: 'silence' })) + (await b.metric('falco_router_events_filtered_total', { reason: 'silence' }));
      assert.equal(received(sink, 'archive').length, n + 1, 'the other output got every alert');
      assert.equal(received(sink, 'slack-dev').length, n + 1 - silenced, 'the silenced output got every alert not counted as silenced');
      t.diagnostic(`in effect on B ${effectMs} ms after the create on A answered`);
    } finally {
      await a.stop();
      await b.stop();
      await sink.close();
    }
  });

  test('a silence survives a router killed with SIGKILL: the first alert after the restart is silenced', { timeout: 60_000 }, async () => {
    const sink = await startHttpSink();
    const file = join(tempDir(), 'config.yaml');
    writeFileSync(file, `auth: { apitoken: ${TOKEN} }\n${redisQueue(`kill-${randomUUID().slice(0, 8)}`)}\noutputs:\n${webhooks(sink, ['slack-dev', 'archive'])}\n`);
    const first = await spawnRouter(file);
    let id: string;
    try {
      id = await create(first, { ...SILENCE, outputs: ['slack-dev'] });
    } finally {
      first.child.kill('SIGKILL');
      await first.stop();
    }
    const second = await spawnRouter(file);
    try {
      assert.equal((await fetch(second.url, { method: 'POST', body: shell(1), headers: BEARER })).status, 200);
      assert.equal((await fetch(second.url, { method: 'POST', body: shell(2, 'prod'), headers: BEARER })).status, 200);
      await waitFor(() => received(sink, 'archive').length === 2 && received(sink, 'slack-dev').length === 1, 15_000, 'the unsilenced deliveries');
      await delay(300);
      assert.deepEqual(received(sink, 'slack-dev'), [2]);
      assert.deepEqual(received(sink, 'archive'), [1, 2]);
      await waitFor(async () => (await api(second, 'GET', `/api/v1/silences/${id}`)).json.silenced['slack-dev'] === 1, 5000, 'the count in Redis');
    } finally {
      await second.stop();
      await sink.close();
    }
  });

  test(`keeps at most ${SILENCE_LIMITS.kept} silences, expired included: a create beyond that removes from Redis those that ended first, with their counts`, async (t) => {
    const prefix = `kept-${randomUUID().slice(0, 8)}`;
    const client = new Redis(redis.url);
    t.after(() => client.quit());
    const n = SILENCE_LIMITS.kept;
    const now = Date.now();
    const fields: string[] = [];
    for (let i = n - 1; i >= 0; i--) {
      const at = new Date(now - (n - i) * 1000).toISOString();
      fields.push(`old-${i}`, JSON.stringify({ id: `old-${i}`, matchers: ['rule="x"'], startsAt: at, endsAt: at, comment: 'c', createdBy: 'b', createdAt: at, updatedAt: at }));
    }
    await client.hset(`${prefix}:silences`, ...fields);
    await client.hset(`${prefix}:silences:counts:old-0`, 'siem', 3);
    const r = await router(`${redisQueue(prefix)}\n`);
    try {
      const id = await create(r);
      assert.equal(await client.hlen(`${prefix}:silences`), n);
      assert.deepEqual(await client.hmget(`${prefix}:silences`, 'old-0', 'old-1').then((v) => v.map((x) => x !== null)), [false, true], 'the one that ended first is gone');
      assert.equal(await client.exists(`${prefix}:silences:counts:old-0`), 0, 'with its counts');
      assert.equal(await client.hexists(`${prefix}:silences`, id), 1);
      assert.deepEqual(r.silences.states(), { active: 1, pending: 0, expired: n - 1 });
    } finally {
      await r.stop();
    }
  });

  test('while Redis is away the silence API answers 503 and says why; the silences known stay in force', { timeout: 60_000 }, async () => {
    // Its own Redis, persistent, so that the silence is still there when it comes back.
    const own = await startRedis({ aof: 'always' });
    const r = await router(`queue: { driver: redis, redis: { url: "${own.url}" } }\n`);
    try {
      const id = await create(r);
      await own.stop();
      const refused = await api(r, 'POST', '/api/v1/silences', SILENCE);
      assert.equal(refused.status, 503);
      assert.match(refused.json.error, /^silences are not available: /);
      assert.equal((await api(r, 'GET', '/api/v1/silences')).status, 503);
      assert.equal(r.silences.silencedBy(decodeEvent(shell(1)) as FalcoEvent, 'file')?.id, id, 'the cache still applies it');
      await own.start();
      await waitFor(async () => (await api(r, 'POST', '/api/v1/silences', SILENCE)).status === 201, 15_000, 'the API back with Redis');
      assert.equal((await api(r, 'GET', `/api/v1/silences/${id}`)).json.status.state, 'active');
    } finally {
      await r.stop();
      await own.stop(true);
    }
  });
});

describe('route-test', () => {
  const silenced = (out: string) => (JSON.parse(out) as { silences: string; outputs: Array<{ name: string; sent: boolean; reason?: string; silence?: { id: string } }> });

  test('names the silence that keeps an alert from an output, read from Redis, and writes nothing there', async (t) => {
    const sink = await startHttpSink();
    const prefix = `rts-${randomUUID().slice(0, 8)}`;
    const file = join(tempDir(), 'config.yaml');
    writeFileSync(file, `${redisQueue(prefix)}\noutputs:\n${webhooks(sink, ['slack-dev', 'archive'])}\n`);
    const r = await router(readFileSync(file, 'utf8'));
    let id: string;
    try {
      id = await create(r, { ...SILENCE, outputs: ['slack-dev'] });
    } finally {
      await r.stop();
      await sink.close();
    }
    const client = new Redis(redis.url);
    t.after(() => client.quit());
    const keys = async () => (await client.keys(`${prefix}:silences*`)).sort();
    const before = await keys();
    const json = await runCli(['route-test', '-c', file, '--json'], {}, shell(1));
    assert.equal(json.code, 0, json.stderr);
    const shown = silenced(json.stdout);
    assert.equal(shown.silences, 'redis');
    assert.deepEqual(shown.outputs.map((o) => [o.name, o.sent, o.reason, o.silence?.id]), [['slack-dev', false, 'silence', id], ['archive', true, undefined, undefined]]);
    const human = await runCli(['route-test', '-c', file], {}, shell(2));
    assert.match(human.stdout, new RegExp(`slack-dev \\(webhook\\)\\s+not sent: silence ${id} \\("image fix in progress \\(JIRA-123\\)", by "alice@example.com", until \\S+\\) matches: rule="Terminal shell in container", k8s.ns.name=~"dev-.\\*"`));
    const prod = await runCli(['route-test', '-c', file, '--json'], {}, shell(3, 'prod'));
    assert.deepEqual(silenced(prod.stdout).outputs.map((o) => o.sent), [true, true], 'another namespace is not silenced');
    assert.deepEqual(await keys(), before, 'no count, no version bump');
    assert.equal(await client.hlen(`${prefix}:silences:counts:${id}`), 0);
  });

  test('prints no control character raw, human or --json: ESC, DEL, CSI (U+009B), bidi overrides from alert values and from a silence made over the API', async () => {
    // What a terminal acts on: C0 (ESC starts a sequence), DEL, C1 (U+009B is CSI), bidi controls.
    const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
    const bad = (s: string) => `${s}\u001b]0;owned\u0007\u001b[2J\u007f\u009b31m\u202egnp.exe\u2066x\u2069\u200f`;
    const rule = bad('Terminal shell');
    const event = JSON.stringify({
      output: 'x', priority: 'Notice', rule, time: '2026-11-29T18:00:00Z', source: bad('syscall'), hostname: bad('node'),
      output_fields: { 'proc.cmdline': bad('bash'), 'k8s.ns.name': 'dev' },
    });
    const dir = tempDir();
    const yaml = `silences: { path: "${join(dir, 'silences.json')}" }
outputs:
  - { name: siem, type: file, path: "${join(dir, 'siem.jsonl')}" }
  - { name: team, type: file, path: "${join(dir, 'team.jsonl')}", match: ['proc.cmdline="vim"'] }
`;
    const r = await router(yaml);
    let id: string;
    try {
      id = await create(r, { ...SILENCE, matchers: [{ name: 'rule', value: rule }], comment: bad('why'), createdBy: bad('who'), outputs: ['siem'] });
    } finally {
      await r.stop();
    }
    const file = join(dir, 'config.yaml');
    writeFileSync(file, yaml);
    const [human, json] = await Promise.all([runCli(['route-test', '-c', file], {}, event), runCli(['route-test', '-c', file, '--json'], {}, event)]);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(json.code, 0, json.stderr);
    for (const [what, out] of [['human', human.stdout], ['json', json.stdout]]) {
      const found = RAW.exec(out.replaceAll('\n', ''));
      assert.equal(found, null, `${what}: U+${found?.[0].codePointAt(0)!.toString(16).padStart(4, '0')} printed raw`);
    }
    assert.match(human.stdout, new RegExp(`siem \\(file\\)\\s+not sent: silence ${id} `), 'the silence is shown');
    assert.ok(human.stdout.includes('rule="Terminal shell\\u001b]0;owned\\u0007\\u001b[2J\\u007f\\u009b31m\\u202egnp.exe'), 'the matcher shows its escapes');
    assert.match(human.stdout, /team \(file\)\s+not sent: match\[0\] proc\.cmdline="vim" does not hold \(proc\.cmdline is "bash\\u001b/);
    // --json stays JSON, and the escapes read back as the very characters.
    const j = JSON.parse(json.stdout) as { alert: Record<string, string>; outputs: Array<{ value?: string; silence?: { matchers: string[]; comment: string; createdBy: string } }> };
    assert.deepEqual(j.alert, { rule, priority: 'Notice', source: bad('syscall'), hostname: bad('node') });
    assert.deepEqual(j.outputs[0].silence && [j.outputs[0].silence.matchers, j.outputs[0].silence.comment, j.outputs[0].silence.createdBy], [[`rule="${rule}"`], bad('why'), bad('who')]);
    assert.equal(j.outputs[1].value, bad('bash'));
  });

  test('with the memory driver, reads silences.path when set, and says it cannot see them otherwise', async () => {
    const dir = tempDir();
    const path = join(dir, 'silences.json');
    const yaml = `silences: { path: "${path}" }\noutputs:\n  - { name: siem, type: file, path: "${join(dir, 'out.jsonl')}" }\n`;
    const r = await router(yaml);
    let id: string;
    try {
      id = await create(r);
    } finally {
      await r.stop();
    }
    const file = join(dir, 'config.yaml');
    writeFileSync(file, yaml);
    const written = readFileSync(path, 'utf8');
    const withPath = silenced((await runCli(['route-test', '-c', file, '--json'], {}, shell(1))).stdout);
    assert.equal(withPath.silences, 'file');
    assert.deepEqual(withPath.outputs.map((o) => [o.reason, o.silence?.id]), [['silence', id]]);
    assert.equal(readFileSync(path, 'utf8'), written, 'the file is left as it was');

    writeFileSync(file, yaml.replace(/^silences:.*\n/, ''));
    const without = await runCli(['route-test', '-c', file], {}, shell(1));
    assert.match(without.stdout, /silences: kept in the router's process \(memory queue without silences\.path\); route-test cannot see them/);
    assert.match(without.stdout, /siem \(file\)\s+sent/);
  });
});
