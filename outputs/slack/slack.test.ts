/**
 * Slack's own behaviour against a local fake Slack (./fake.ts) over real loopback HTTP:
 * falcosidekick's message byte for byte, outputformat, messageformat, the look settings, the
 * flood-control summary, Slack's answers and what a send does with each, its configuration, and,
 * through the whole router, what only Slack does (flood control, one message per alert in order).
 * Retries, dead letters, Retry-After, timeouts and secrets are checked for every output by the
 * conformance kit (test/conformance/outputs.test.ts, with ./conformance.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Pool } from 'undici';
import { slack, DEFAULT_ICON } from './index.ts';
import { DEFAULT_FOOTER } from './payload.ts';
import { OutputError, StoredEvent, goTimeString, serializeEvent, type Output } from '../sdk/index.ts';
import { backlogGroups } from '../../src/pipeline/summary.ts';
import { createAdapter, sendContext } from '../sdk/testkit/adapter.ts';
import { checkEvent, decodeEvent } from '../../src/event/falco-event.ts';
import { loadConfig, maskedOutputs, ConfigError } from '../../src/config/load.ts';
import { outputTypes } from '../index.ts';
import { startTestRouter, tempDir, type TestRouter } from '../../test/helpers/router.ts';
import { waitFor } from '../../test/helpers/wait.ts';
import { F1, F6, falcoEvent } from '../../test/fixtures/events.ts';
import { startFakeSlack, slackReplies, markerOfMessage, type FakeSlack, type SlackReply } from './fake.ts';

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

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

type Ctx = { after(fn: () => unknown): void };

/** A fake Slack closed when the test ends, whatever happens in it. */
async function fakeSlack(t: Ctx, replies?: SlackReply[]): Promise<FakeSlack> {
  const fake = await startFakeSlack(replies);
  t.after(() => fake.close());
  return fake;
}

/** The adapter on its own, pointed at the fake; settings are validated by the real schema. */
function adapter(t: Ctx, fake: { url: string }, settings: Record<string, unknown> = {}) {
  return createAdapter(t, slack, { webhookurl: fake.url, ...settings });
}

/** Sends and checks that the adapter reported every event delivered. */
async function sendAll(out: Output, events: StoredEvent[]): Promise<void> {
  const ctx = sendContext();
  await out.send(events, ctx);
  assert.deepEqual(ctx.reported, { delivered: events, failed: [] });
}

/** The error a one-message send ends with, whether thrown or reported for the message. */
async function failureOf(out: Output, ev: StoredEvent): Promise<OutputError> {
  const ctx = sendContext();
  try {
    await out.send([ev], ctx);
  } catch (err) {
    assert.ok(err instanceof OutputError, `an OutputError, not ${String(err)}`);
    assert.deepEqual(ctx.reported.delivered, []);
    return err;
  }
  assert.deepEqual(ctx.reported.delivered, [], 'not delivered');
  assert.equal(ctx.reported.failed.length, 1, 'send() should have failed the message');
  assert.deepEqual(ctx.reported.failed[0].events, [ev]);
  return ctx.reported.failed[0].error;
}

async function withRouter(yaml: string, fn: (r: TestRouter) => Promise<void>): Promise<void> {
  const r = await startTestRouter(yaml);
  try {
    await fn(r);
  } finally {
    await r.stop();
  }
}

const isSummary = (m: { text?: string }) => m.text?.startsWith('Flood control') ?? false;

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
    await sendAll(out, [stored(F1)]);
    const expected =
      '{"text":"Rule: Test rule Priority: Debug","username":"Falcosidekick","icon_url":"https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick.png","attachments":[{"fallback":"This is a test from falcosidekick","color":"#ccfff2","text":"This is a test from falcosidekick","fields":[{"title":"rule","value":"Test rule","short":true},{"title":"priority","value":"Debug","short":true},{"title":"source","value":"syscalls","short":true},{"title":"hostname","value":"test-host","short":true},{"title":"tags","value":"example, test","short":true},{"title":"proc.name","value":"falcosidekick","short":true},{"title":"time","value":"2001-01-01 01:10:00 +0000 UTC","short":false}],"footer":"https://github.com/falcosecurity/falcosidekick"}]}';
    const [req] = fake.requests;
    assert.deepEqual(req.json, JSON.parse(expected));
    assert.equal(req.raw, expected + '\n', 'Go’s json.Encoder output: same key order, trailing newline');
    assert.equal(req.method, 'POST');
    assert.equal(req.path, fake.path);
    assert.equal(req.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(req.headers['user-agent'], 'Falcosidekick');
  });

  test('outputformat text: the output line, "fields": null and no footer (compat §4.1)', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake, { outputformat: 'text' });
    await sendAll(out, [stored(F1)]);
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
    await sendAll(fields.out, [stored(F1)]);
    await sendAll(all.out, [stored(F1)]);
    await sendAll(dflt.out, [stored(F1)]);
    const [f, a, d] = fake.messages().map((m) => m.attachments[0]);
    assert.deepEqual(Object.keys(f), ['fallback', 'color', 'fields', 'footer']);
    assert.equal(f.fields.length, 7);
    assert.deepEqual(Object.keys(a), ['fallback', 'color', 'text', 'fields', 'footer']);
    assert.deepEqual(d, a);
  });

  test('channel, username, icon and footer are sent as configured; empty username and icon are left out, an empty footer is the default', async (t) => {
    const fake = await fakeSlack(t);
    const custom = await adapter(t, fake, { channel: '#secops', username: 'Falco', icon: 'https://example.com/falco.png', footer: 'prod cluster' });
    const bare = await adapter(t, fake, { username: '', icon: '', footer: '' });
    await sendAll(custom.out, [stored(F1)]);
    await sendAll(bare.out, [stored(F1)]);
    const [c, b] = fake.messages();
    assert.deepEqual(Object.keys(c), ['username', 'icon_url', 'channel', 'attachments']);
    assert.equal(c.channel, '#secops');
    assert.equal(c.username, 'Falco');
    assert.equal(c.icon_url, 'https://example.com/falco.png');
    assert.equal(c.attachments[0].footer, 'prod cluster');
    assert.deepEqual(Object.keys(b), ['attachments']);
    assert.equal(b.attachments[0].footer, DEFAULT_FOOTER);
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
    await sendAll(out, Object.keys(colours).map((p) => event({ priority: p })));
    assert.deepEqual(fake.messages().map((m) => m.attachments[0].color), Object.values(colours));
  });

  test('shows only string output fields, sorted, short under 36 characters; HTML-escaped as Go writes JSON', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake);
    const long = 'x'.repeat(35) + 'é';
    await sendAll(out, [event({ output: 'user=<NA> & more' }, { 'a.long': long, 'a.short': 'é'.repeat(35), 'evt.num': 7, 'evt.bool': true, 'evt.null': null, 'evt.list': ['a'] })]);
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
    await sendAll(on.out, [stored(F6)]);
    await sendAll(off.out, [stored(F6)]);
    await sendAll(on.out, [event({}, { 'evt.bool': false })]);
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
    await sendAll(out, [event({ time: '2019-05-17T17:31:56.500+02:00' })]);
    assert.equal(fake.messages()[0].attachments[0].fields.at(-1).value, '2019-05-17 17:31:56.5 +0200 +0200');
  });
});

// ---------------------------------------------------------------------------------------------
// messageformat
// ---------------------------------------------------------------------------------------------

describe('messageformat', () => {
  test('renders Go templates as falcosidekick users write them: index, or, if/else, range, <no value>, .Time as Go prints a time.Time', async (t) => {
    const fake = await fakeSlack(t);
    const tmpl =
      '{{ .Priority }}: {{ .Rule }} in ns {{ index .OutputFields "k8s.ns.name" }}' +
      ' pod={{ or (index .OutputFields "k8s.pod.name") "n/a" }} user={{ index .OutputFields "user.name" }}' +
      ' {{ if eq .Priority "Critical" }}PAGE{{ else }}fyi{{ end }} tags:{{ range .Tags }} #{{ . }}{{ end }}' +
      ' host={{ .Hostname }} at {{ .Time }} tty={{ index .OutputFields "proc.tty" }}' +
      '{{ if index .OutputFields "proc.tty" }} (tty){{ end }}{{ with index .OutputFields "nope" }} never{{ end }}';
    const { out } = await adapter(t, fake, { messageformat: tmpl });
    await sendAll(out, [event({}, { 'proc.tty': 34816 }), event({ priority: 'Warning' }, { 'k8s.pod.name': 'web-1', 'user.name': 'root', 'proc.tty': 0 })]);
    const [a, b] = fake.messages().map((m) => m.text);
    assert.equal(
      a,
      'Critical: Terminal shell in container in ns payments pod=n/a user=<no value> PAGE tags: #container #mitre_execution #shell host=node-1 at 2025-04-02 15:15:03.434319636 +0000 UTC tty=34816 (tty)',
    );
    assert.equal(b, 'Warning: Terminal shell in container in ns payments pod=web-1 user=root fyi tags: #container #mitre_execution #shell host=node-1 at 2025-04-02 15:15:03.434319636 +0000 UTC tty=0');
  });

  test('exposes .Output .Source .UUID and .OutputFields.key (a missing one is <no value>); a template that renders nothing sends no text', async (t) => {
    const fake = await fakeSlack(t);
    const full = await adapter(t, fake, { messageformat: '{{ .Source }}|{{ .UUID }}|{{ .OutputFields.env }}|{{ .OutputFields.missing }}|{{ .Output }}' });
    const empty = await adapter(t, fake, { messageformat: '{{ if false }}x{{ end }}' });
    await sendAll(full.out, [event({ uuid: 'u-1' }, { env: 'prod' })]);
    await sendAll(empty.out, [event()]);
    const [a, b] = fake.messages();
    assert.equal(a.text, 'syscall|u-1|prod|<no value>|15:15:03.434319636: Critical Shell spawned in a container (user=root pod=web-1)');
    assert.equal(b.text, undefined);
    assert.deepEqual(Object.keys(b), ['username', 'icon_url', 'attachments']);
  });

  test('a template that fails (unknown field) is reported at start; alerts still go, without the text line, and the failure is logged', async (t) => {
    const fake = await fakeSlack(t);
    await withRouter(`slack:\n  webhookurl: "${fake.url}"\n  messageformat: "Rule {{ .rule }}"\n`, async (r) => {
      assert.ok(
        r.logs.some((l) => /slack\.messageformat fails on a sample alert .*can't evaluate field rule.*alerts are sent without it/.test(l)),
        r.logs.join('\n'),
      );
      await r.post(falcoEvent(1));
      await waitFor(() => fake.messages().length === 1, 5000, 'the message');
      const [m] = fake.messages();
      assert.equal(m.text, undefined);
      assert.equal(markerOfMessage(m), 1);
      await waitFor(() => r.logs.some((l) => l.includes('template messageformat failed, left out')), 2000, 'the failure logged');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// flood-control summaries
// ---------------------------------------------------------------------------------------------

describe('summary', () => {
  const T0 = Date.parse('2025-04-02T15:15:00Z');
  const at = (s: number) => new Date(T0 + s * 1000).toISOString();
  const alert = (rule: string, priority: string, hostname: string, seconds: number) =>
    event({ rule, priority, hostname, time: at(seconds), output: `${priority} ${rule}` });

  test('one message for many alerts: an attachment per rule, most alerts first, with its priorities, hosts, span and colour', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake, { channel: '#secops' });
    const events = [
      alert('Read sensitive file untrusted', 'Notice', '', 10),
      alert('Terminal shell in container', 'Warning', 'node-2', 90),
      alert('Terminal shell in container', 'Critical', 'node-1', 0),
      alert('Terminal shell in container', 'Warning', 'node-1', 30),
    ];
    const ctx = sendContext();
    await out.sendSummary!(backlogGroups(events.map((e) => e.event)), ctx);
    assert.equal(fake.requests.length, 1, 'one POST for all of them');
    assert.deepEqual(fake.messages()[0], {
      text: 'Flood control: 4 alerts summarised instead of posted one by one (they still reached every other output)',
      username: 'Falcosidekick',
      icon_url: DEFAULT_ICON,
      channel: '#secops',
      attachments: [
        {
          fallback: '3 more alerts for rule Terminal shell in container in the last 2 minutes',
          color: '#ff5400',
          text: '3 more alerts for rule Terminal shell in container in the last 2 minutes',
          fields: [
            { title: 'rule', value: 'Terminal shell in container', short: true },
            { title: 'priority', value: 'Critical: 1, Warning: 2', short: true },
            { title: 'hostnames', value: 'node-1, node-2', short: true },
            { title: 'first', value: '2025-04-02 15:15:00 +0000 UTC', short: false },
            { title: 'last', value: '2025-04-02 15:16:30 +0000 UTC', short: false },
          ],
          footer: DEFAULT_FOOTER,
        },
        {
          fallback: '1 more alert for rule Read sensitive file untrusted in the last minute',
          color: '#5bffb5',
          text: '1 more alert for rule Read sensitive file untrusted in the last minute',
          fields: [
            { title: 'rule', value: 'Read sensitive file untrusted', short: true },
            { title: 'priority', value: 'Notice: 1', short: true },
            { title: 'first', value: '2025-04-02 15:15:10 +0000 UTC', short: false },
            { title: 'last', value: '2025-04-02 15:15:10 +0000 UTC', short: false },
          ],
          footer: DEFAULT_FOOTER,
        },
      ],
    });
    assert.deepEqual(ctx.reported, { delivered: [], failed: [] }, 'a summary that resolves stands for all its alerts without reporting each');
  });

  test('beyond 20 rules the rest share one attachment; outputformat text leaves out fields and footer here too', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake, { outputformat: 'text' });
    const rules = Array.from({ length: 25 }, (_, i) => `rule ${String(i).padStart(2, '0')}`);
    const events = [...rules.map((r) => alert(r, 'Warning', 'node-1', 0)), alert('rule 24', 'Error', 'node-1', 0), alert('rule 24', 'Warning', 'node-1', 0)];
    await out.sendSummary!(backlogGroups(events.map((e) => e.event)), sendContext());
    const [m] = fake.messages();
    assert.equal(m.text, 'Flood control: 27 alerts summarised instead of posted one by one (they still reached every other output)');
    assert.equal(m.attachments.length, 20);
    assert.equal(m.attachments[0].text, '3 more alerts for rule rule 24 in the last minute');
    assert.equal(m.attachments[0].color, '#e20b0b', 'the colour of its highest priority (Error)');
    assert.equal(m.attachments[1].text, '1 more alert for rule rule 00 in the last minute');
    assert.equal(m.attachments[19].text, '6 more alerts for 6 other rules in the last minute');
    for (const a of m.attachments) {
      assert.deepEqual(Object.keys(a), ['fallback', 'color', 'text', 'fields']);
      assert.equal(a.fields, null);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Slack's answers
// ---------------------------------------------------------------------------------------------

describe('Slack’s answers', () => {
  test('each of Slack’s documented answers is classified, and the error keeps Slack’s word', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake);
    const cases: Array<[SlackReply, string, boolean]> = [
      [slackReplies.rateLimited(2), 'rateLimited', true],
      [slackReplies.serverError(500), 'serverError', true],
      [slackReplies.serverError(503), 'serverError', true],
      [slackReplies.invalidPayload(), 'clientError', false],
      [slackReplies.userNotFound(), 'clientError', false],
      [slackReplies.invalidToken(), 'authError', false],
      [slackReplies.actionProhibited(), 'authError', false],
      [slackReplies.channelNotFound(), 'clientError', false],
      [slackReplies.noService(), 'clientError', false],
      [slackReplies.channelIsArchived(), 'clientError', false],
    ];
    for (const [reply, reason, retryable] of cases) {
      fake.script([reply]);
      const err = await failureOf(out, event());
      const what = `${reply.status} ${reply.body}`;
      assert.equal(err.reason, reason, what);
      assert.equal(err.retryable, retryable, what);
      assert.equal(err.status, reply.status, what);
      assert.match(err.message, new RegExp(`answered ${reply.status}: ${reply.body}$`), what);
      assert.equal(err.retryAfterMs, reply.status === 429 ? 2000 : undefined, what);
    }
    assert.equal(fake.messages().length, 0);
  });

  test('a refusal of the webhook itself (403, 404, 410) or a 429 ends the batch: the later messages are not posted', async (t) => {
    const fake = await fakeSlack(t);
    const { out } = await adapter(t, fake);
    const replies = [slackReplies.invalidToken(), slackReplies.noService(), slackReplies.channelIsArchived(), slackReplies.rateLimited(1)];
    for (const refusal of replies) {
      fake.script([slackReplies.ok(), refusal]);
      const before = fake.requests.length;
      const events = [1, 2, 3, 4].map((n) => stored(falcoEvent(n)));
      const ctx = sendContext();
      await assert.rejects(out.send(events, ctx), (err: unknown) => err instanceof OutputError && err.status === refusal.status);
      assert.deepEqual(ctx.reported, { delivered: [events[0]], failed: [] }, `${refusal.body}: the rest fail with the thrown error`);
      assert.equal(fake.requests.length - before, 2, `${refusal.body}: no post after the refusal`);
    }
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
      icon: DEFAULT_ICON,
      footer: DEFAULT_FOOTER,
      outputformat: 'text',
      messageformat: undefined,
      shownonstringfields: false,
      checkcert: true,
      mutualtls: false,
    });
    const shown = JSON.stringify(maskedOutputs(cfg, outputTypes));
    assert.ok(shown.includes('"webhookurl":"***"'), shown);
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
    assert.equal(env.length, 1, env.join('\n'));
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
      assert.equal(
        fake.requests[0].raw,
        '{"username":"Falcosidekick","icon_url":"https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png","attachments":[{"fallback":"This is a test from falcosidekick","color":"#ccfff2","text":"This is a test from falcosidekick","fields":[{"title":"rule","value":"Test rule","short":true},{"title":"priority","value":"Debug","short":true},{"title":"source","value":"internal","short":true},{"title":"hostname","value":"test-host","short":true},{"title":"tags","value":"example, test","short":true},{"title":"proc.name","value":"falcosidekick","short":true},{"title":"time","value":"2001-01-01 01:10:00 +0000 UTC","short":false}],"footer":"https://github.com/falcosecurity/falcosidekick"}]}\n',
      );
      // One message at a time, in order: had the Notice gone out, it would be the second message.
      assert.equal(markerOfMessage(fake.messages()[1]), 2, 'the Notice was not sent');
      assert.ok(r.logs.some((l) => l.includes('"msg":"Slack payload"') && l.includes('"level":20')), 'debug logs payloads');
    });
  });

  test('a 429 rate_limited holds back the messages behind it too, for what Retry-After says; then they go in order', async (t) => {
    const fake = await fakeSlack(t, [slackReplies.rateLimited(1), slackReplies.ok()]);
    await withRouter(`outputs:\n  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ${FAST}, ratelimit: 20 } }\n`, async (r) => {
      for (let i = 1; i <= 3; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
      await waitFor(() => fake.messages().length === 3, 5000, 'Slack deliveries after the pause');
      const [first, ...rest] = fake.requests;
      assert.equal(first.status, 429);
      assert.equal(rest.length, 3, 'nothing else was posted meanwhile');
      assert.ok(rest[0].at - first.at >= 950, `the next post came ${rest[0].at - first.at} ms later; Retry-After said 1 s`);
      assert.deepEqual(fake.messages().map(markerOfMessage), [1, 2, 3]);
      assert.ok(r.logs.some((l) => l.includes('"reason":"rateLimited"') && l.includes('answered 429: rate_limited')));
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
    const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
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
          if (isSummary(m)) for (const a of m.attachments) n += Number(/^(\d+) more alerts? for rule /.exec(a.text)?.[1] ?? NaN);
          else n += 1;
        }
        return n;
      };
      await waitFor(() => counted() >= N, 20_000, 'every alert posted or summarised');
      await waitFor(() => lines().length === N, 5000, 'every alert in the file');

      const msgs = fake.messages();
      const summaries = msgs.filter(isSummary);
      const singles = msgs.filter((m) => !isSummary(m));
      let summarised = 0;
      for (const s of summaries) {
        let inThis = 0;
        for (const a of s.attachments) {
          const m = /^(\d+) more alerts? for rule (.+) in the last minute$/.exec(a.text);
          assert.ok(m, `summary line: ${a.text}`);
          assert.ok(rules.includes(m[2]), m[2]);
          assert.equal(a.fallback, a.text);
          const priorities = a.fields.find((f: { title: string }) => f.title === 'priority').value as string;
          // Colour of the highest priority in the group.
          assert.equal(a.color, priorities.startsWith('Critical') ? '#ff5400' : '#ffc700');
          inThis += Number(m[1]);
        }
        assert.match(s.text, new RegExp(`^Flood control: ${inThis} alerts? summarised`));
        summarised += inThis;
      }
      const markers = singles.map(markerOfMessage);
      assert.equal(new Set(markers).size, markers.length, 'no alert posted twice');
      assert.equal(singles.length + summarised, N, 'individual + summarised = 2,000');
      assert.ok(summaries.length > 0, 'some summaries');
      // The bound applies to the backlog as each job is taken; with many jobs taken at once it is
      // approximate, so about BOUND alerts (not exactly) go one by one.
      assert.ok(singles.length >= BOUND / 2, `about ${BOUND} alerts go one by one (${singles.length})`);
      assert.ok(msgs.length < N / 4, `far fewer messages than alerts (${msgs.length})`);
      // Within the rate: any RATE+1 consecutive posts span about a second (less a little timer jitter).
      const times = fake.requests.map((q) => q.at);
      for (let i = 0; i + RATE < times.length; i++) assert.ok(times[i + RATE] - times[i] >= 900, `posts ${i}..${i + RATE} within ${times[i + RATE] - times[i]} ms`);
      const fileMarkers = lines().map((l) => Number(/"test\.n":(\d+)/.exec(l)![1]));
      assert.deepEqual(fileMarkers.sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i));
      assert.equal(await r.metric('falco_router_events_summarized_total', { output: 'team-a' }), summarised);
      assert.equal(await r.metric('falco_router_events_delivered_total', { output: 'team-a' }), singles.length);
    });
  });

  test('a flood from one Falco (one alert per request, one after the other): each summary gathers the alerts that waited for its turn', async (t) => {
    const fake = await fakeSlack(t);
    // 20 messages a second: a summary waits 50 ms for its turn, long enough for many one-alert requests to gather.
    await withRouter(`outputs:\n  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ratelimit: 20, summarizeabove: 10 } }\n`, async (r) => {
      const pool = new Pool(r.url, { connections: 1 });
      try {
        for (let i = 0; i < 300; i++) await (await pool.request({ path: '/', method: 'POST', body: falcoEvent(i) })).body.text();
      } finally {
        await pool.close();
      }
      const counted = () => fake.messages().reduce((n, m) => n + (isSummary(m) ? Number(/^Flood control: (\d+)/.exec(m.text)![1]) : 1), 0);
      await waitFor(() => counted() >= 300, 15_000, 'every alert posted or summarised');
      assert.equal(counted(), 300);
      const summaries = fake.messages().filter(isSummary);
      const summarised = 300 - (fake.messages().length - summaries.length);
      assert.ok(summaries.length > 0, 'some summaries');
      assert.ok(summarised / summaries.length >= 5, `${summaries.length} summary messages for ${summarised} alerts: not one per request`);
    });
  });
});
