/**
 * The Slack output against a local fake Slack (test/fakes/slack.ts) over real loopback HTTP:
 * falcosidekick's payload byte for byte, outputformat, messageformat (Go templates), the look
 * settings, error classification, and, through the whole router, 429 / 5xx / 403 handling and flood
 * control. No test may leak the webhook URL into a log line or an error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Pool } from 'undici';
import { slack, goTimeString } from './index.ts';
import { OutputError } from '../../src/errors.ts';
import { StoredEvent } from '../../src/event/stored-event.ts';
import { checkEvent, decodeEvent, serializeEvent } from '../../src/event/falco-event.ts';
import { createLogger } from '../../src/log.ts';
import { loadConfig, maskedOutputs, ConfigError } from '../../src/config/load.ts';
import { outputTypes } from '../index.ts';
import { startTestRouter, tempDir, type TestRouter } from '../../test/helpers/router.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { waitFor, delay } from '../../test/helpers/wait.ts';
import { F1, F6, falcoEvent } from '../../test/fixtures/events.ts';
import { startFakeSlack, slackReplies, type FakeSlack, type SlackReply } from './fake.ts';

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const NO_TLS = { certfile: '', keyfile: '', cacertfile: '', extracafile: '' };
const OLD_ICON = 'https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick.png';

/** An event as ingest stores it, but without enrichment (falcosidekick's unit tests decode only). */
function stored(json: string): StoredEvent {
  return new StoredEvent(serializeEvent(checkEvent(decodeEvent(json))));
}

function event(over: Record<string, unknown> = {}, fields: Record<string, unknown> = {}): StoredEvent {
  return stored(
    JSON.stringify({
      output: '15:15:03.434319636: Critical Shell spawned in a container (user=root pod=web-1)',
      priority: 'Critical',
      rule: 'Terminal shell in container',
      time: '2025-04-02T15:15:03.434319636Z',
      source: 'syscall',
      hostname: 'node-1',
      tags: ['shell', 'container', 'mitre_execution'],
      output_fields: { 'k8s.ns.name': 'payments', 'proc.name': 'bash', ...fields },
      ...over,
    }),
  );
}

function captureLogger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger('debug', sink), lines };
}

type Ctx = { after(fn: () => Promise<void> | void): void };

/** A fake Slack closed when the test ends, whatever happens in it. */
async function fakeSlack(t: Ctx, replies?: SlackReply[]): Promise<FakeSlack> {
  const fake = await startFakeSlack(replies);
  t.after(() => fake.close());
  return fake;
}

/** The adapter on its own, pointed at the fake; settings are validated by the real schema. */
async function adapter(t: Ctx, fake: { url: string }, settings: Record<string, unknown> = {}, debug = false) {
  const cfg = slack.schema.parse({ webhookurl: fake.url, ...settings });
  const { logger, lines } = captureLogger();
  const out = await slack.create('team-a', cfg, { logger, debug, tls: NO_TLS, concurrency: 1 });
  t.after(() => out.close?.());
  return { out, lines };
}

const ctx = (ms = 5000) => ({ signal: AbortSignal.timeout(ms), attempt: 1 });

async function sendError(p: Promise<void>): Promise<OutputError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OutputError, `an OutputError, not ${String(err)}`);
    return err;
  }
  assert.fail('send() should have failed');
}

/** Neither the whole URL nor its secret path may appear anywhere. */
function assertNoSecret(texts: readonly string[], fake: FakeSlack, what = 'logs'): void {
  for (const t of texts) {
    assert.ok(!t.includes(fake.token), `${what} leak the webhook token: ${t}`);
    assert.ok(!t.includes(fake.path), `${what} leak the webhook path: ${t}`);
  }
}

async function withRouter(yaml: string, fn: (r: TestRouter) => Promise<void>): Promise<void> {
  const r = await startTestRouter(yaml);
  try {
    await fn(r);
  } finally {
    await r.stop();
  }
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const markerInText = (s: string) => Number(/\bn=(\d+)\)/.exec(s)?.[1] ?? NaN);

// ---------------------------------------------------------------------------------------------
// payload
// ---------------------------------------------------------------------------------------------

describe('payload', () => {
  test('equals falcosidekick’s TestNewSlackPayload expectation for F1 (compat §4.1), byte for byte', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake, {
      username: 'Falcosidekick',
      icon: OLD_ICON,
      messageformat: 'Rule: {{ .Rule }} Priority: {{ .Priority }}',
      outputformat: '',
      footer: '',
    });
    await out.send([stored(F1)], ctx());
    const expected =
      '{"text":"Rule: Test rule Priority: Debug","username":"Falcosidekick","icon_url":"https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick.png","attachments":[{"fallback":"This is a test from falcosidekick","color":"#ccfff2","text":"This is a test from falcosidekick","fields":[{"title":"rule","value":"Test rule","short":true},{"title":"priority","value":"Debug","short":true},{"title":"source","value":"syscalls","short":true},{"title":"hostname","value":"test-host","short":true},{"title":"tags","value":"example, test","short":true},{"title":"proc.name","value":"falcosidekick","short":true},{"title":"time","value":"2001-01-01 01:10:00 +0000 UTC","short":false}],"footer":"https://github.com/falcosecurity/falcosidekick"}]}';
    const [req] = fake.requests;
    assert.deepEqual(req.json, JSON.parse(expected));
    assert.equal(req.raw, expected + '\n', 'Go’s json.Encoder output: same key order, trailing newline');
    assert.equal(req.method, 'POST');
    assert.equal(req.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(req.headers['user-agent'], 'Falcosidekick');
  });

  test('outputformat text: the output line, "fields": null and no footer (compat §4.1)', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake, { outputformat: 'text' });
    await out.send([stored(F1)], ctx());
    assert.equal(
      fake.requests[0].raw,
      '{"username":"Falcosidekick","icon_url":"https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png","attachments":[{"fallback":"This is a test from falcosidekick","color":"#ccfff2","text":"This is a test from falcosidekick","fields":null}]}\n',
    );
  });

  test('outputformat fields: fields and footer without the text; all (the default): both', async (t) => {
    const fake = await fakeSlack(t);
    const fields = await adapter(t, fake, { outputformat: 'fields' });
    const all = await adapter(t, fake, { outputformat: 'ALL' });
    const dflt = await adapter(t, fake);
    await fields.out.send([stored(F1)], ctx());
    await all.out.send([stored(F1)], ctx());
    await dflt.out.send([stored(F1)], ctx());
    const [f, a, d] = fake.messages().map((m) => m.attachments[0]);
    assert.deepEqual(Object.keys(f), ['fallback', 'color', 'fields', 'footer']);
    assert.equal(f.fields.length, 7);
    assert.deepEqual(Object.keys(a), ['fallback', 'color', 'text', 'fields', 'footer']);
    assert.deepEqual(d, a);
  });

  test('channel, username, icon and footer are sent as configured; empty username and icon are left out', async (t) => {
    const fake = await fakeSlack(t);
    const custom = await adapter(t, fake, { channel: '#secops', username: 'Falco', icon: 'https://example.com/falco.png', footer: 'prod cluster' });
    const bare = await adapter(t, fake, { username: '', icon: '' });
    await custom.out.send([stored(F1)], ctx());
    await bare.out.send([stored(F1)], ctx());
    const [c, b] = fake.messages();
    assert.deepEqual(Object.keys(c), ['username', 'icon_url', 'channel', 'attachments']);
    assert.equal(c.channel, '#secops');
    assert.equal(c.username, 'Falco');
    assert.equal(c.icon_url, 'https://example.com/falco.png');
    assert.equal(c.attachments[0].footer, 'prod cluster');
    assert.deepEqual(Object.keys(b), ['attachments']);
    assert.equal(b.attachments[0].footer, 'https://github.com/falcosecurity/falcosidekick');
  });

  test('colours by priority, as falcosidekick', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake);
    const colours: Record<string, string> = {
      Emergency: '#e20b0b',
      Alert: '#ff5400',
      Critical: '#ff5400',
      Error: '#e20b0b',
      Warning: '#ffc700',
      Notice: '#5bffb5',
      Informational: '#68c2ff',
      Debug: '#ccfff2',
    };
    for (const p of Object.keys(colours)) await out.send([event({ priority: p })], ctx());
    assert.deepEqual(
      fake.messages().map((m) => m.attachments[0].color),
      Object.values(colours),
    );
  });

  test('shows only string output fields, sorted, short under 36 characters; HTML-escaped as Go writes JSON', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake);
    const long = 'x'.repeat(35) + 'é';
    await out.send([event({ output: 'user=<NA> & more' }, { 'a.long': long, 'a.short': 'é'.repeat(35), 'evt.num': 7, 'evt.bool': true, 'evt.null': null, 'evt.list': ['a'] })], ctx());
    const raw = fake.requests[0].raw;
    assert.ok(raw.includes('"fallback":"user=\\u003cNA\\u003e \\u0026 more"'), raw);
    const fields = fake.messages()[0].attachments[0].fields as Array<{ title: string; value: string; short: boolean }>;
    assert.deepEqual(
      fields.map((f) => [f.title, f.short]),
      [
        ['rule', true],
        ['priority', true],
        ['source', true],
        ['hostname', true],
        ['tags', true],
        ['a.long', false],
        ['a.short', true],
        ['k8s.ns.name', true],
        ['proc.name', true],
        ['time', false],
      ],
    );
    assert.equal(fields[4].value, 'container, mitre_execution, shell');
  });

  test('shownonstringfields (opt-in) shows numbers exactly and booleans as text', async (t) => {
    const fake = await fakeSlack(t);
    const on = await adapter(t, fake, { shownonstringfields: 'true' });
    const off = await adapter(t, fake);
    await on.out.send([stored(F6)], ctx());
    await off.out.send([stored(F6)], ctx());
    await on.out.send([event({}, { 'evt.bool': false })], ctx());
    const [withNums, without, withBool] = fake.messages().map((m) => m.attachments[0].fields as Array<{ title: string; value: string }>);
    assert.deepEqual(withNums.find((f) => f.title === 'evt.time'), { title: 'evt.time', value: '1507591916746609046', short: true });
    assert.equal(without.find((f) => f.title === 'evt.time'), undefined);
    assert.equal(withBool.find((f) => f.title === 'evt.bool')?.value, 'false');
  });

  test('time is Go’s time.String(): nanoseconds kept, trailing zeros cut, offsets as an unnamed zone', async (t) => {
    assert.equal(goTimeString('2001-01-01T01:10:00Z'), '2001-01-01 01:10:00 +0000 UTC');
    assert.equal(goTimeString('2023-03-03T03:03:03.000000003Z'), '2023-03-03 03:03:03.000000003 +0000 UTC');
    assert.equal(goTimeString('2019-05-17T17:31:56.5+02:00'), '2019-05-17 17:31:56.5 +0200 +0200');
    assert.equal(goTimeString('2019-05-17T10:31:56.123456789123-05:30'), '2019-05-17 10:31:56.123456789 -0530 -0530');
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake);
    await out.send([event({ time: '2019-05-17T17:31:56.500+02:00' })], ctx());
    assert.equal(fake.messages()[0].attachments[0].fields.at(-1).value, '2019-05-17 17:31:56.5 +0200 +0200');
  });
});

// ---------------------------------------------------------------------------------------------
// messageformat
// ---------------------------------------------------------------------------------------------

describe('messageformat', () => {
  test('renders Go templates as falcosidekick users write them: index, or, if/else, range, <no value>', async (t) => {
    const fake = await fakeSlack(t);
    const tmpl =
      '{{ .Priority }}: {{ .Rule }} in ns {{ index .OutputFields "k8s.ns.name" }}' +
      ' pod={{ or (index .OutputFields "k8s.pod.name") "n/a" }} user={{ index .OutputFields "user.name" }}' +
      ' {{ if eq .Priority "Critical" }}PAGE{{ else }}fyi{{ end }} tags:{{ range .Tags }} #{{ . }}{{ end }}' +
      ' host={{ .Hostname }} at {{ .Time }} tty={{ index .OutputFields "proc.tty" }}' +
      '{{ if index .OutputFields "proc.tty" }} (tty){{ end }}{{ with index .OutputFields "nope" }} never{{ end }}';
    const { out } = await adapter(t, fake, { messageformat: tmpl });
    await out.send([event({}, { 'proc.tty': 34816 })], ctx());
    await out.send([event({ priority: 'Warning' }, { 'k8s.pod.name': 'web-1', 'user.name': 'root', 'proc.tty': 0 })], ctx());
    const [a, b] = fake.messages().map((m) => m.text);
    assert.equal(
      a,
      'Critical: Terminal shell in container in ns payments pod=n/a user=<no value> PAGE tags: #container #mitre_execution #shell host=node-1 at 2025-04-02 15:15:03.434319636 +0000 UTC tty=34816 (tty)',
    );
    assert.equal(b, 'Warning: Terminal shell in container in ns payments pod=web-1 user=root fyi tags: #container #mitre_execution #shell host=node-1 at 2025-04-02 15:15:03.434319636 +0000 UTC tty=0');
  });

  test('exposes .Output .Source .UUID and .OutputFields.key; a template that renders nothing sends no text', async (t) => {
    const fake = await fakeSlack(t);
    const full = await adapter(t, fake, { messageformat: '{{ .Source }}|{{ .UUID }}|{{ .OutputFields.env }}|{{ .OutputFields.missing }}|{{ .Output }}' });
    const empty = await adapter(t, fake, { messageformat: '{{ if false }}x{{ end }}' });
    await full.out.send([event({ uuid: 'u-1' }, { env: 'prod' })], ctx());
    await empty.out.send([event()], ctx());
    const [a, b] = fake.messages();
    assert.equal(a.text, 'syscall|u-1|prod|<no value>|15:15:03.434319636: Critical Shell spawned in a container (user=root pod=web-1)');
    assert.equal(b.text, undefined);
  });

  test('a template that fails when executed (unknown field) is reported at start and the message goes without text', async (t) => {
    const fake = await fakeSlack(t);
    const { out, lines } = await adapter(t, fake, { messageformat: 'Rule {{ .rule }}' });
    assert.ok(lines.some((l) => /messageformat fails on a sample event.*can't evaluate field rule/.test(l)), lines.join('\n'));
    await out.send([event()], ctx());
    assert.equal(fake.messages()[0].text, undefined);
    assert.equal(fake.messages()[0].attachments[0].fallback.startsWith('15:15:03'), true);
    assert.ok(lines.some((l) => l.includes('Error expanding Slack message')));
  });
});

// ---------------------------------------------------------------------------------------------
// errors, on the adapter alone
// ---------------------------------------------------------------------------------------------

describe('error classification', () => {
  test('429 → rateLimited with Retry-After; 5xx → retryable; 400/403/404 → permanent with Slack’s answer', async (t) => {
    const fake = await fakeSlack(t);
    const { out, lines } = await adapter(t, fake, {}, true);
    const cases: Array<[ReturnType<typeof slackReplies.ok>, string, boolean, RegExp]> = [
      [slackReplies.rateLimited(2), 'rateLimited', true, /answered 429: rate_limited/],
      [slackReplies.serverError(500), 'serverError', true, /answered 500/],
      [slackReplies.serverError(503), 'serverError', true, /answered 503/],
      [slackReplies.invalidPayload(), 'clientError', false, /answered 400: invalid_payload/],
      [slackReplies.invalidToken(), 'authError', false, /answered 403: invalid_token/],
      [slackReplies.channelNotFound(), 'clientError', false, /answered 404: channel_not_found/],
      // A proxy’s error page that quotes the request path must not leak it.
      [{ status: 404, body: `Cannot POST ${fake.path}` }, 'clientError', false, /answered 404: Cannot POST \/\*\*\*/],
    ];
    const errors: string[] = [];
    for (const [reply, reason, retryable, message] of cases) {
      fake.script([reply]);
      const err = await sendError(out.send([event()], ctx()));
      assert.equal(err.reason, reason, `${reply.status}`);
      assert.equal(err.retryable, retryable, `${reply.status}`);
      assert.match(err.message, message);
      assert.match(err.message, /^slack http:\/\/127\.0\.0\.1:\d+\/\*\*\* answered/);
      if (reply.status === 429) assert.equal(err.retryAfterMs, 2000);
      errors.push(err.message);
    }
    assertNoSecret(errors, fake, 'errors');
    assertNoSecret(lines, fake);
    assert.ok(lines.some((l) => l.includes('Slack payload')), 'debug logs the payload');
  });

  test('a refused connection and a hung Slack are retryable, and name no secret', async (t) => {
    const port = await freePort();
    const gone = { url: `http://127.0.0.1:${port}/services/T1/B2/s3cr3t-t0ken`, token: 's3cr3t-t0ken', path: '/services/T1/B2/s3cr3t-t0ken' };
    const a = await adapter(t, gone);
    const refused = await sendError(a.out.send([event()], ctx()));
    assert.equal(refused.reason, 'network');
    assert.equal(refused.retryable, true);
    assert.ok(!refused.message.includes('s3cr3t'), refused.message);

    const fake = await fakeSlack(t, [{ status: 200, body: 'ok', delayMs: 2000 }]);
    const b = await adapter(t, fake);
    const hung = await sendError(b.out.send([event()], ctx(200)));
    assert.equal(hung.reason, 'timeout');
    assert.equal(hung.retryable, true);
    assertNoSecret([hung.message], fake, 'errors');
  });
});

// ---------------------------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------------------------

describe('configuration', () => {
  test('falcosidekick’s env keys make one instance named slack, with flood-control defaults; the URL is masked', () => {
    const url = 'https://hooks.slack.com/services/T000/B000/XXXXSECRET';
    const cfg = loadConfig({
      env: { SLACK_WEBHOOKURL: url, SLACK_MINIMUMPRIORITY: 'warning', SLACK_CHANNEL: '#alerts', SLACK_OUTPUTFORMAT: 'text', SLACK_DELIVERY_RATELIMIT: '2' },
      types: outputTypes,
    });
    assert.equal(cfg.outputs.length, 1);
    const [o] = cfg.outputs;
    assert.equal(o.name, 'slack');
    assert.equal(o.type, 'slack');
    assert.equal(o.minimumpriority, 4);
    const { concurrency, maxbatch, ratelimit, summarizeabove } = o.delivery;
    assert.deepEqual({ concurrency, maxbatch, ratelimit, summarizeabove }, { concurrency: 1, maxbatch: 1, ratelimit: 2, summarizeabove: 50 });
    assert.deepEqual(o.settings, {
      webhookurl: url,
      channel: '#alerts',
      username: 'Falcosidekick',
      icon: 'https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png',
      footer: 'https://github.com/falcosecurity/falcosidekick',
      outputformat: 'text',
      messageformat: '',
      shownonstringfields: false,
      checkcert: true,
      mutualtls: false,
    });
    const shown = JSON.stringify(maskedOutputs(cfg, outputTypes));
    assert.ok(!shown.includes('XXXXSECRET'), shown);
    const defaults = loadConfig({ env: { SLACK_WEBHOOKURL: url }, types: outputTypes }).outputs[0].delivery;
    assert.equal(defaults.ratelimit, 1);
  });

  function problems(opts: { yaml?: string; env?: Record<string, string> }): string[] {
    let file: string | undefined;
    if (opts.yaml) {
      file = join(tempDir(), 'c.yaml');
      writeFileSync(file, opts.yaml);
    }
    try {
      loadConfig({ file, env: opts.env ?? {}, types: outputTypes });
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
    return [];
  }

  test('a messageformat that does not parse is a startup error naming the key', () => {
    const env = problems({ env: { SLACK_WEBHOOKURL: 'https://hooks.slack.com/services/T/B/C', SLACK_MESSAGEFORMAT: 'Rule: {{ .Rule' } });
    assert.equal(env.length, 1);
    assert.match(env[0], /^slack\.messageformat: not a valid Go template: .*unclosed action/);
    const native = problems({ yaml: 'outputs:\n  - { name: team-a, type: slack, webhookurl: "https://hooks.slack.com/services/T/B/C", messageformat: "{{ nosuchfunc .Rule }}" }\n' });
    assert.match(native[0], /^outputs\[0\]\.messageformat: not a valid Go template: .*function "nosuchfunc" not defined/);
  });

  test('other mistakes name their key: outputformat, a missing or bad webhookurl, an unknown native key', () => {
    const fmt = problems({ env: { SLACK_WEBHOOKURL: 'https://hooks.slack.com/services/T/B/C', SLACK_OUTPUTFORMAT: 'field' } });
    assert.match(fmt[0], /^slack\.outputformat: "field" is not an output format; use all, text or fields \(falcosidekick’s docs say "field"/);
    const bad = problems({ env: { SLACK_WEBHOOKURL: 'hooks.slack.com/services/T/B/C' } });
    assert.deepEqual(bad, ['slack.webhookurl: is not an http(s) URL']);
    const native = problems({ yaml: 'outputs:\n  - { name: team-a, type: slack, chanel: "#x" }\n' });
    assert.ok(native.includes('outputs[0].webhookurl: is required'), native.join('\n'));
    assert.ok(native.some((p) => p.startsWith('outputs[0]') && p.includes('"chanel"')), native.join('\n'));
  });
});

// ---------------------------------------------------------------------------------------------
// through the router
// ---------------------------------------------------------------------------------------------

describe('through the router', () => {
  const FAST = 'attempts: 5, initialdelay: 20ms, maxdelay: 100ms, timeout: 2s';

  test('falcosidekick config (slack.webhookurl, minimumpriority: warning) posts F1 as falcosidekick does by default', async (t) => {
    const fake = await fakeSlack(t);
    await withRouter(`debug: true\nslack:\n  webhookurl: "${fake.url}"\n  minimumpriority: warning\n`, async (r) => {
      assert.equal((await r.post(F1)).status, 200, 'Test rule bypasses minimumpriority');
      assert.equal((await r.post(falcoEvent(1, 'Notice'))).status, 200);
      assert.equal((await r.post(falcoEvent(2, 'Warning'))).status, 200);
      await waitFor(() => fake.messages().length === 2, 5000, 'two messages');
      await delay(100);
      assert.equal(
        fake.requests[0].raw,
        '{"username":"Falcosidekick","icon_url":"https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png","attachments":[{"fallback":"This is a test from falcosidekick","color":"#ccfff2","text":"This is a test from falcosidekick","fields":[{"title":"rule","value":"Test rule","short":true},{"title":"priority","value":"Debug","short":true},{"title":"source","value":"internal","short":true},{"title":"hostname","value":"test-host","short":true},{"title":"tags","value":"example, test","short":true},{"title":"proc.name","value":"falcosidekick","short":true},{"title":"time","value":"2001-01-01 01:10:00 +0000 UTC","short":false}],"footer":"https://github.com/falcosecurity/falcosidekick"}]}\n',
      );
      assert.deepEqual(fake.messages().map((m) => markerInText(m.attachments[0].fallback)).slice(1), [2], 'the Notice was not sent');
      assert.ok(r.logs.some((l) => l.includes('Slack payload')), 'debug logs payloads');
      assertNoSecret(r.logs, fake);
    });
  });

  test('several Slack instances, one per team, each with its own minimum priority', async (t) => {
    const a = await fakeSlack(t);
    const b = await fakeSlack(t);
    const yaml = `outputs:
  - { name: team-a, type: slack, webhookurl: "${a.url}", channel: "#team-a", minimumpriority: critical, delivery: { ratelimit: 100 } }
  - { name: team-b, type: slack, webhookurl: "${b.url}", minimumpriority: warning, delivery: { ratelimit: 100 } }
`;
    await withRouter(yaml, async (r) => {
      for (const [n, p] of [[1, 'Warning'], [2, 'Critical'], [3, 'Debug']] as const) assert.equal((await r.post(falcoEvent(n, p))).status, 200);
      await waitFor(() => a.messages().length === 1 && b.messages().length === 2, 5000, 'deliveries');
      await delay(100);
      assert.deepEqual(a.messages().map((m) => markerInText(m.attachments[0].fallback)), [2]);
      assert.equal(a.messages()[0].channel, '#team-a');
      assert.deepEqual(b.messages().map((m) => markerInText(m.attachments[0].fallback)), [1, 2]);
      assertNoSecret(r.logs, a);
      assertNoSecret(r.logs, b);
    });
  });

  test('429: waits what Retry-After says, then sends everything in order; the other output is not held up', async (t) => {
    const fake = await fakeSlack(t, [slackReplies.rateLimited(1), slackReplies.ok()]);
    const file = join(tempDir(), 'all.ndjson');
    const yaml = `outputs:
  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ${FAST}, ratelimit: 20 } }
  - { name: archive, type: file, path: ${file} }
`;
    await withRouter(yaml, async (r) => {
      for (let i = 1; i <= 3; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
      await waitFor(() => lines(file).length === 3, 800, 'the file output, while Slack is paused');
      assert.equal(fake.messages().length, 0, 'Slack is still waiting out Retry-After');
      await waitFor(() => fake.messages().length === 3, 5000, 'Slack deliveries after the pause');
      const [first, second] = fake.requests;
      assert.equal(first.status, 429);
      assert.ok(second.at - first.at >= 950, `resent after ${second.at - first.at} ms; Retry-After said 1 s`);
      assert.deepEqual(fake.messages().map((m) => markerInText(m.attachments[0].fallback)), [1, 2, 3]);
      assert.equal(await r.queue.deadLetterCount('team-a'), 0);
      assert.ok(r.logs.some((l) => l.includes('"reason":"rateLimited"') && l.includes('answered 429: rate_limited')));
      assertNoSecret(r.logs, fake);
    });
  });

  test('5xx: retried with backoff, then delivered once', async (t) => {
    const fake = await fakeSlack(t, [slackReplies.serverError(500), slackReplies.serverError(503), slackReplies.ok()]);
    await withRouter(`outputs:\n  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ${FAST}, ratelimit: 100 } }\n`, async (r) => {
      await r.post(falcoEvent(7));
      await waitFor(() => fake.messages().length === 1, 5000, 'the delivery after recovery');
      await delay(100);
      assert.deepEqual(fake.requests.map((q) => q.status), [500, 503, 200]);
      assert.ok(fake.requests.every((q) => q.raw === fake.requests[0].raw), 'the same message each time');
      const failed = r.logs.filter((l) => l.includes('delivery attempt failed'));
      assert.equal(failed.length, 2);
      assert.match(failed[0], /"reason":"serverError".*"attempt":1/);
      assertNoSecret(r.logs, fake);
    });
  });

  test('403 invalid_token and 404 channel_not_found: dead-lettered at once with Slack’s answer; other instances unaffected', async (t) => {
    const a = await fakeSlack(t, [slackReplies.invalidToken()]);
    const b = await fakeSlack(t, [slackReplies.channelNotFound()]);
    const c = await fakeSlack(t);
    const yaml = `outputs:
  - { name: team-a, type: slack, webhookurl: "${a.url}", delivery: { ${FAST} } }
  - { name: team-b, type: slack, webhookurl: "${b.url}", delivery: { ${FAST} } }
  - { name: team-c, type: slack, webhookurl: "${c.url}", delivery: { ${FAST} } }
`;
    await withRouter(yaml, async (r) => {
      await r.post(falcoEvent(9));
      await waitFor(async () => (await r.queue.deadLetterCount('team-a')) === 1 && (await r.queue.deadLetterCount('team-b')) === 1, 5000, 'two dead letters');
      await waitFor(() => c.messages().length === 1, 5000, 'team-c delivery');
      await delay(300);
      assert.equal(a.requests.length, 1, 'no retry after 403');
      assert.equal(b.requests.length, 1, 'no retry after 404');
      const [da] = await r.queue.listDeadLetters('team-a');
      const [db] = await r.queue.listDeadLetters('team-b');
      assert.match(da.reason, /^slack http:\/\/127\.0\.0\.1:\d+\/\*\*\* answered 403: invalid_token$/);
      assert.match(db.reason, /answered 404: channel_not_found$/);
      assert.equal(da.attempts, 1);
      assert.equal(markerInText(JSON.parse(da.event).output), 9);
      for (const f of [a, b, c]) {
        assertNoSecret(r.logs, f);
        assertNoSecret([da.reason, db.reason], f, 'dead-letter reasons');
      }
    });
  });

  test('a 2,000-alert flood: individual messages up to the bound, then summaries; counts add up; the file gets all 2,000', async (t) => {
    const N = 2000;
    const BOUND = 100;
    const RATE = 50;
    const fake = await fakeSlack(t);
    const file = join(tempDir(), 'all.ndjson');
    const yaml = `outputs:
  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ratelimit: ${RATE}, summarizeabove: ${BOUND} } }
  - { name: archive, type: file, path: ${file} }
`;
    await withRouter(yaml, async (r) => {
      // Many senders at once, as from a DaemonSet of Falcos; undici keeps this fast in-process.
      const pool = new Pool(r.url, { connections: 50 });
      let next = 0;
      const rules = ['Read sensitive file untrusted', 'Terminal shell in container'];
      const statuses: number[] = [];
      try {
        await Promise.all(
          Array.from({ length: 50 }, async () => {
            while (next < N) {
              const i = next++;
              const res = await pool.request({ path: '/', method: 'POST', body: falcoEvent(i, i % 10 === 0 ? 'Critical' : 'Warning', rules[i % 2]) });
              await res.body.text();
              statuses.push(res.statusCode);
            }
          }),
        );
      } finally {
        await pool.close();
      }
      assert.deepEqual(new Set(statuses), new Set([200]));
      assert.equal(statuses.length, N);

      const counted = () => {
        let n = 0;
        for (const m of fake.messages()) {
          if (m.text?.startsWith('Flood control')) for (const a of m.attachments) n += Number(/^(\d+) more alerts? for rule /.exec(a.text)?.[1] ?? NaN);
          else n += 1;
        }
        return n;
      };
      await waitFor(() => counted() >= N, 20_000, 'every alert posted or summarised');
      await waitFor(() => lines(file).length === N, 5000, 'every alert in the file');
      await delay(200);

      const msgs = fake.messages();
      const summaries = msgs.filter((m) => m.text?.startsWith('Flood control'));
      const singles = msgs.filter((m) => !m.text?.startsWith('Flood control'));
      let summarised = 0;
      for (const s of summaries) {
        let inThis = 0;
        for (const a of s.attachments) {
          const m = /^(\d+) more alerts? for rule (.+) in the last minute$/.exec(a.text);
          assert.ok(m, `summary line: ${a.text}`);
          assert.ok(rules.includes(m[2]), m[2]);
          assert.equal(a.fallback, a.text);
          const ruleFields = a.fields.find((f: { title: string }) => f.title === 'priority').value as string;
          // Colour of the highest priority in the group.
          assert.equal(a.color, ruleFields.startsWith('Critical') ? '#ff5400' : '#ffc700');
          inThis += Number(m[1]);
        }
        assert.match(s.text, new RegExp(`^Flood control: ${inThis} alerts? summarised`));
        summarised += inThis;
      }
      const markers = singles.map((m) => markerInText(m.attachments[0].fallback));
      assert.equal(new Set(markers).size, markers.length, 'no alert posted twice');
      assert.equal(singles.length + summarised, N, 'individual + summarised = 2,000');
      assert.ok(summaries.length > 0, 'some summaries');
      // The bound applies to the backlog as each job is taken; with many jobs taken at once it is
      // approximate, so about BOUND alerts (not exactly) go one by one.
      assert.ok(singles.length >= BOUND / 2, `about ${BOUND} alerts go one by one (${singles.length})`);
      assert.ok(msgs.length < N / 4, `far fewer messages than alerts (${msgs.length})`);
      // Within the rate: any RATE+1 consecutive posts span about a second (less a little timer jitter).
      const at = fake.requests.map((q) => q.at);
      for (let i = 0; i + RATE < at.length; i++) assert.ok(at[i + RATE] - at[i] >= 900, `posts ${i}..${i + RATE} within ${at[i + RATE] - at[i]} ms`);
      const fileMarkers = lines(file).map((l) => Number(/"test\.n":(\d+)/.exec(l)![1])).sort((x, y) => x - y);
      assert.deepEqual(fileMarkers, Array.from({ length: N }, (_, i) => i));
      const metric = async (c: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }) =>
        (await c.get()).values.filter((v) => v.labels.output === 'team-a').reduce((n, v) => n + v.value, 0);
      assert.equal(await metric(r.metrics.summarizedEvents), summarised);
      assert.equal(await metric(r.metrics.deliveredEvents), singles.length);
      assertNoSecret(r.logs, fake);
    });
  });

  test('with maxbatch above 1, alerts waiting to be batched are not stranded behind a summary, and a stop finishes', async (t) => {
    const fake = await fakeSlack(t);
    await withRouter(`outputs:\n  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ratelimit: 0, maxbatch: 10, concurrency: 1, summarizeabove: 2 } }\n`, async (r) => {
      await Promise.all(Array.from({ length: 30 }, (_, i) => r.post(falcoEvent(i)).then((res) => assert.equal(res.status, 200))));
      const counted = () =>
        fake.messages().reduce((n, m) => {
          const summary = /^Flood control: (\d+) alerts? summarised/.exec(m.text ?? '');
          return n + (summary ? Number(summary[1]) : 1);
        }, 0);
      await waitFor(() => counted() >= 30, 10_000, 'every alert posted or summarised');
      assert.equal(counted(), 30);
    });
  });

  test(
    'a flood from one Falco (one alert per request) is summarised into few messages',
    async (t) => {
      const fake = await fakeSlack(t);
      await withRouter(`outputs:\n  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ratelimit: 200, summarizeabove: 20 } }\n`, async (r) => {
        const pool = new Pool(r.url, { connections: 1 });
        try {
          for (let i = 0; i < 300; i++) await (await pool.request({ path: '/', method: 'POST', body: falcoEvent(i) })).body.text();
        } finally {
          await pool.close();
        }
        await delay(2000);
        const summaries = fake.messages().filter((m) => m.text?.startsWith('Flood control'));
        assert.ok(summaries.length > 0 && summaries.length < 20, `${summaries.length} summary messages for ${300 - 20} surplus alerts`);
      });
    },
  );
});
