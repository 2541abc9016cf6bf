/**
 * SNS's own payload and protocol: what a message and its attributes look like, FIFO ids, sizes,
 * how a batch is cut into PublishBatch calls and how each entry's result is reported, against a
 * local SNS that applies Publish's and PublishBatch's rules (fake.ts) and a local STS. Behaviour
 * every output shares (retries, dead letters, timeouts, redaction, set-up retried) is in the
 * conformance kit (test/conformance/outputs.test.ts, fixture conformance.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { readFileSync, existsSync } from 'node:fs';
import { startTestRouter, tempDir, type TestRouter } from '../../test/helpers/router.ts';
import { waitFor, delay } from '../../test/helpers/wait.ts';
import { F1, F6, falcoEvent, markerOf as markerOfJson } from '../../test/fixtures/events.ts';
import { isolateAwsEnv } from '../sdk/testkit/aws-fake.ts';
import { startSnsFake, MAX_BATCH_BYTES, type SnsFake, type SnsCall, type Published } from './fake.ts';
import { startStsFake, type StsFake } from '../sdk/testkit/sts-fake.ts';
import { classifyAwsError } from '../sdk/aws/errors.ts';
import { createAdapter, sendContext } from '../sdk/testkit/adapter.ts';
import { StoredEvent } from '../sdk/index.ts';
import { awsSns } from './index.ts';
import { messageAttributes, fifoId, deduplicationId } from './payload.ts';
import { decodeEvent, checkEvent, serializeEvent, deserializeEvent } from '../../src/event/falco-event.ts';

isolateAwsEnv();

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:falco-alerts';
const FIFO = 'arn:aws:sns:eu-west-1:123456789012:falco-alerts.fifo';
const FAST_RETRY = 'delivery: { attempts: 5, initialdelay: 20ms, maxdelay: 100ms, timeout: 5s }';

let sns: SnsFake;
let sts: StsFake;
before(async () => {
  sns = await startSnsFake();
  sts = await startStsFake();
});
after(async () => {
  await sns.close();
  await sts.close();
});

/** falcosidekick-style YAML: shared aws.* keys and the aws.sns section. */
function fsYaml(opts: { topic?: string; extra?: string; top?: string } = {}): string {
  return `
${opts.top ?? ''}
aws:
  region: eu-west-1
  accesskeyid: AKIDSNS
  secretaccesskey: sns-s3cr3t
  checkidentity: false
  sns:
    topicarn: ${opts.topic ?? TOPIC}
    endpoint: ${sns.url}
    ${FAST_RETRY}
${(opts.extra ?? '').replace(/^/gm, '    ')}
`;
}

async function withRouter(yaml: string, fn: (r: TestRouter) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  const r = await startTestRouter(yaml, env);
  try {
    await fn(r);
  } finally {
    await r.stop();
  }
}

/** Waits for n more publishes and returns them. */
async function nextPublished(from: number, n = 1) {
  await waitFor(() => sns.published.length >= from + n, 5000, `${n} publish(es)`);
  return sns.published.slice(from);
}

test('publishes the output with the attributes of falcosidekick’s example (F6), Number for int64, signed with the configured key', async () => {
  await withRouter(fsYaml(), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(F6)).status, 200);
    const [p] = await nextPublished(from);
    assert.equal(p.topicArn, TOPIC);
    assert.equal(p.message, '16:31:56.746609046: Error File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack)');
    assert.deepEqual(p.attributes, {
      priority: { DataType: 'String', StringValue: 'Error' },
      rule: { DataType: 'String', StringValue: 'Write below binary dir' },
      source: { DataType: 'String', StringValue: 'syscalls' },
      hostname: { DataType: 'String', StringValue: 'localhost' },
      'evt.time': { DataType: 'Number', StringValue: '1507591916746609046' },
      'fd.name': { DataType: 'String', StringValue: '/bin/hack' },
      'proc.cmdline': { DataType: 'String', StringValue: 'touch /bin/hack' },
      'user.name': { DataType: 'String', StringValue: 'root' },
    });
    assert.deepEqual(p.attributeOrder.slice(0, 4), ['priority', 'rule', 'source', 'hostname'], 'built-in attributes first');
    assert.equal(p.subject, undefined);
    assert.equal(p.groupId, undefined);
    assert.equal(p.dedupId, undefined);
    const call = sns.calls.at(-1)!;
    assert.equal(call.params.Version, '2010-03-31');
    assert.equal(call.accessKeyId, 'AKIDSNS');
  });
});

test('never sends more than 10 attributes: built-ins, then namespace and pod, tags, the other output fields by name (or tags and the attributefields list in its order); empty strings skipped; names made valid', async () => {
  const ev = JSON.stringify({
    output: 'many fields',
    priority: 'Critical',
    rule: 'Many fields',
    time: new Date().toISOString(),
    hostname: 'node-7',
    tags: ['T1059', 'container'],
    output_fields: {
      'a.empty': '',
      'b.bool': true,
      'c.null': null,
      'container.id': 'abc123',
      'evt.time': 0,
      'k8s.ns.name': 'payments',
      'k8s.pod.name': 'api-7d9',
      priority: 'Debug',
      'proc.aname[2]': 'bash',
      'proc.pid': 4242,
      'proc.name': 'sh',
      'user uid/name': 'root',
      'z.float': 1.5e300,
      'z.last': 'never',
    },
  })
    .replace('"evt.time":0', '"evt.time":1743606903434319636')
    .replace('"z.float":1.5e+300', '"z.float":1.5e300');

  await withRouter(fsYaml(), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(ev)).status, 200);
    const [p] = await nextPublished(from);
    assert.equal(p.attributeOrder.length, 10);
    assert.deepEqual(p.attributeOrder, ['priority', 'rule', 'source', 'hostname', 'k8s.ns.name', 'k8s.pod.name', 'tags', 'container.id', 'evt.time', 'proc.aname.2']);
    assert.deepEqual(p.attributes.tags, { DataType: 'String', StringValue: 'T1059,container' });
    assert.deepEqual(p.attributes.priority, { DataType: 'String', StringValue: 'Critical' }, 'an output field cannot replace a built-in');
    assert.deepEqual(p.attributes['evt.time'], { DataType: 'Number', StringValue: '1743606903434319636' });
    const warn = r.logs.filter((l) => l.includes('SNS allows 10 message attributes'));
    assert.equal(warn.length, 1);
    assert.match(warn[0], /left out: proc\.name, proc\.pid, user uid\/name, z\.float, z\.last/);
    assert.equal((await r.post(ev)).status, 200);
    await nextPublished(from, 2);
    assert.equal(r.logs.filter((l) => l.includes('SNS allows 10 message attributes')).length, 1, 'warned once');
  });

  await withRouter(fsYaml({ extra: 'attributefields: [z.float, user uid/name, a.empty, missing, proc.pid, k8s.ns.name]' }), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(ev)).status, 200);
    const [p] = await nextPublished(from);
    assert.deepEqual(p.attributeOrder, ['priority', 'rule', 'source', 'hostname', 'tags', 'z.float', 'user_uid_name', 'proc.pid', 'k8s.ns.name']);
    assert.deepEqual(p.attributes['z.float'], { DataType: 'String', StringValue: '1.5e300' }, 'beyond SNS’s Number range: sent as String');
    assert.deepEqual(p.attributes['proc.pid'], { DataType: 'Number', StringValue: '4242' });
  });
});

test('namespace, pod and image survive the cap for a Kubernetes alert with many fields, so a subscription filtering on them still matches', async () => {
  // "Terminal shell in container" with the fields Falco's k8s rules print: sorted by name alone,
  // k8s.* would come after container.* and evt.* and be left out.
  const ev = JSON.stringify({
    output: '10:20:05.408091526: Notice A shell was spawned in a container with an attached terminal (user=root k8s.ns=payments k8s.pod=api-7d9 container=3ad7b26ded6d shell=bash)',
    priority: 'Notice',
    rule: 'Terminal shell in container',
    time: '2025-04-02T10:20:05.408091526Z',
    source: 'syscall',
    hostname: 'node-7',
    tags: ['container', 'shell', 'mitre_execution'],
    output_fields: {
      'container.id': '3ad7b26ded6d',
      'container.image.repository': 'registry.example.com/payments/api',
      'container.image.tag': '1.4.2',
      'container.name': 'api',
      'evt.arg.flags': 'EXE_WRITABLE',
      'evt.time': 0,
      'evt.type': 'execve',
      'k8s.ns.name': 'payments',
      'k8s.pod.name': 'api-7d9',
      'proc.cmdline': 'bash',
      'proc.exepath': '/bin/bash',
      'proc.name': 'bash',
      'proc.pname': 'runc',
      'proc.tty': 34816,
      'user.loginuid': -1,
      'user.name': 'root',
      'user.uid': 0,
    },
  }).replace('"evt.time":0', '"evt.time":1743589205408091526');
  await withRouter(fsYaml(), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(ev)).status, 200);
    const [p] = await nextPublished(from);
    assert.deepEqual(p.attributeOrder, ['priority', 'rule', 'source', 'hostname', 'k8s.ns.name', 'k8s.pod.name', 'container.image.repository', 'tags', 'container.id', 'container.image.tag']);
    // What a filter policy {"k8s.ns.name": ["payments"]} compares.
    assert.deepEqual(p.attributes['k8s.ns.name'], { DataType: 'String', StringValue: 'payments' });
    assert.deepEqual(p.attributes['k8s.pod.name'], { DataType: 'String', StringValue: 'api-7d9' });
    assert.deepEqual(p.attributes['container.image.repository'], { DataType: 'String', StringValue: 'registry.example.com/payments/api' });
    assert.match(r.logs.find((l) => l.includes('SNS allows 10 message attributes'))!, /left out: container\.name, evt\.arg\.flags, evt\.time, evt\.type, proc\.cmdline/);
  });
});

test('rawjson: the message is the event JSON exactly as the webhook body, with no attributes', async () => {
  const file = join(tempDir(), 'copy.ndjson');
  await withRouter(fsYaml({ extra: 'rawjson: true', top: `outputs:\n  - { name: copy, type: file, path: ${file} }` }), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(F6)).status, 200);
    const [p] = await nextPublished(from);
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').length > 0, 5000, 'the file copy');
    assert.equal(p.message + '\n', readFileSync(file, 'utf8'));
    assert.match(p.message, /"evt\.time":1507591916746609046,/);
    assert.deepEqual(p.attributes, {});
    const call = sns.calls[p.call];
    assert.equal(call.action, 'PublishBatch');
    assert.ok(call.params['PublishBatchRequestEntries.member.1.Message'] !== undefined);
    assert.equal(call.params['PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Name'], undefined);
  });
});

test('subject: a Go template, made one line and cut under 100 characters', async () => {
  // YAML double quotes: \" is a quote and \n a line break inside the template.
  const line = 'subject: "[{{ .Priority }}] {{ .Rule }} on {{ .Hostname }} ({{ index .OutputFields \\"proc.name\\" }})\\n{{ .Output }}"';
  await withRouter(fsYaml({ extra: line }), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(falcoEvent(1))).status, 200);
    const [p] = await nextPublished(from);
    assert.ok(p.subject);
    assert.ok(p.subject.length <= 99, `${p.subject.length} characters`);
    assert.match(p.subject, /^\[Warning\] Read sensitive file untrusted on node-1 \(cat\) 15:15:03\.434319636: Warning Sensitive/);
    assert.doesNotMatch(p.subject, /\n/);
  });
});

test('FIFO topic: MessageGroupId from the rule (or a template), MessageDeduplicationId from the event, so a re-sent alert is delivered once', async () => {
  await withRouter(fsYaml({ topic: FIFO }), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(F6)).status, 200);
    assert.equal((await r.post(F6)).status, 200); // the same alert again: a new uuid at ingest, nothing else differs
    assert.equal((await r.post(F6.replace('15:31:56.746609046Z', '15:31:57Z'))).status, 200);
    const [a, b, c] = await nextPublished(from, 3);
    assert.equal(a.groupId, 'Write_below_binary_dir', 'the rule, with characters SNS refuses replaced');
    assert.match(a.dedupId!, /^[0-9a-f]{64}$/);
    assert.equal(b.dedupId, a.dedupId);
    assert.notEqual(c.dedupId, a.dedupId);
    assert.deepEqual([a.duplicate, b.duplicate, c.duplicate], [false, true, false]);
    // The id is sha256 of the event JSON with an empty uuid.
    const expected = createHash('sha256')
      .update('{"uuid":"","output":"16:31:56.746609046: Error File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack)","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack","proc.cmdline":"touch /bin/hack","user.name":"root"},"source":"syscalls","hostname":"localhost"}')
      .digest('hex');
    assert.equal(a.dedupId, expected);

    // A throttled publish retried by the worker keeps the same ids.
    sns.throttle(1);
    const mark = sns.calls.length;
    assert.equal((await r.post(falcoEvent(5))).status, 200);
    const [d] = await nextPublished(from + 3);
    assert.deepEqual(sns.calls.slice(mark).map((x) => x.error ?? 'ok'), ['Throttling', 'ok']);
    assert.equal(sns.calls[mark].params['PublishBatchRequestEntries.member.1.MessageDeduplicationId'], d.dedupId);
    assert.equal(sns.delivered().filter((x) => x.dedupId === d.dedupId).length, 1);
  });

  await withRouter(fsYaml({ topic: FIFO, extra: 'messagegroupid: \'{{ .Hostname }}/{{ index .OutputFields "user.name" }}\'' }), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(F6.replace('15:31:56.746609046Z', '15:40:00Z'))).status, 200);
    const [p] = await nextPublished(from);
    assert.equal(p.groupId, 'localhost/root');
  });
});

test('a message over 256 KiB with its attributes is shortened with a marker and counted as truncated; standard topics get no FIFO ids', async () => {
  await withRouter(fsYaml(), async (r) => {
    const from = sns.published.length;
    const huge = falcoEvent(2).replace('"output":"', `"output":"${'é'.repeat(200_000)}`);
    assert.equal((await r.post(huge)).status, 200);
    const [p] = await nextPublished(from);
    assert.equal(p.groupId, undefined);
    assert.equal(p.dedupId, undefined);
    const attrBytes = Object.entries(p.attributes).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v.DataType) + Buffer.byteLength(v.StringValue), 0);
    assert.ok(Buffer.byteLength(p.message) + attrBytes <= 262_144);
    assert.match(p.message, /^éé.*é…\[truncated by falco-router: \d+ bytes\]$/s);
    assert.ok(r.logs.some((l) => l.includes('SNS: message larger than 256 KiB shortened')));
    await waitFor(async () => (await r.metric('falco_router_output_events_total', { output: 'awssns', stat: 'truncated' })) === 1, 5000, 'the truncated counter');
  });
});

test('Test rule events (source internal) and events without hostname or tags publish only the attributes they have', async () => {
  await withRouter(fsYaml(), async (r) => {
    const from = sns.published.length;
    assert.equal((await r.post(F1)).status, 200);
    const [p] = await nextPublished(from);
    assert.deepEqual(p.attributeOrder, ['priority', 'rule', 'source', 'hostname', 'tags', 'proc.name', 'proc.tty']);
    assert.equal(p.attributes.source.StringValue, 'internal');
    assert.equal(p.attributes.tags.StringValue, 'example,test');
    assert.deepEqual(p.attributes['proc.tty'], { DataType: 'Number', StringValue: '1234' });
  });
});

test('while the identity check is refused (falcosidekick env vars), SNS set-up is retried with an error naming aws.checkidentity and its alerts wait, other outputs deliver, and they are published once STS answers', async () => {
  const file = join(tempDir(), 'archive.ndjson');
  sts.refuse('AccessDenied', 'User is not authorized to perform: sts:GetCallerIdentity');
  const calls = sns.calls.length;
  const from = sns.published.length;
  try {
    await withRouter(
      // Retry settings from YAML, everything else from falcosidekick's variables.
      `aws:\n  sns:\n    ${FAST_RETRY}\noutputs:\n  - { name: archive, type: file, path: ${file} }\n`,
      async (r) => {
        assert.deepEqual(r.workers.map((w) => w.instance.name).sort(), ['archive', 'awssns'], 'the SNS output stays configured');
        const state = () => r.workers.find((w) => w.instance.name === 'awssns')!.state;
        assert.equal((await r.post(F6)).status, 200);
        await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').length > 0, 5000, 'the file output');
        await waitFor(() => (state().setupError?.attempts ?? 0) >= 2, 10_000, 'set-up tried again');
        assert.equal(state().status, 'setting-up');
        assert.match(state().setupError!.message, /^aws\.checkidentity: identity check failed: AccessDenied: User is not authorized/);
        assert.ok(r.logs.some((l) => l.includes('"level":50') && l.includes('output awssns cannot start: aws.checkidentity')));
        assert.equal(sts.calls.at(-1)!.accessKeyId, 'AKIDENV', 'checked with the keys from AWS_ACCESSKEYID');
        assert.equal(sns.calls.length, calls, 'nothing sent to SNS before set-up passes');

        sts.accept();
        const [p] = await nextPublished(from);
        assert.equal(p.attributes.rule.StringValue, 'Write below binary dir');
        assert.equal(sns.calls.at(-1)!.accessKeyId, 'AKIDENV');
        assert.equal(state().status, 'running');
      },
      {
        AWS_REGION: 'eu-west-1',
        AWS_ACCESSKEYID: 'AKIDENV',
        AWS_SECRETACCESSKEY: 'env-secret',
        AWS_SNS_TOPICARN: TOPIC,
        AWS_SNS_ENDPOINT: sns.url,
        AWS_SNS_STSENDPOINT: sts.url,
      },
    );
  } finally {
    sts.accept();
  }
});

test('with rolearn, PublishBatch is signed with the assumed role’s temporary credentials', async () => {
  const yaml = fsYaml().replace('checkidentity: false', `checkidentity: false\n  rolearn: arn:aws:iam::123456789012:role/falco-sns\n  stsendpoint: ${sts.url}`);
  await withRouter(yaml, async (r) => {
    const issued = sts.issued.length;
    const from = sns.published.length;
    assert.equal((await r.post(F6)).status, 200);
    const [p] = await nextPublished(from);
    const role = sts.calls.filter((c) => c.action === 'AssumeRole').at(-1)!;
    assert.equal(role.params.RoleArn, 'arn:aws:iam::123456789012:role/falco-sns');
    assert.equal(role.accessKeyId, 'AKIDSNS', 'the role is assumed with the configured keys');
    assert.equal(sts.issued.length, issued + 1);
    assert.equal(sns.calls[p.call].accessKeyId, sts.issued.at(-1)!.accessKeyId);
  });
});

test('classifies AWS errors: throttling and 5xx retry, denied access and bad requests do not, network failures retry', () => {
  const e = (name: string, status?: number, extra: object = {}) => Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, ...extra });
  const c = (err: unknown) => {
    const o = classifyAwsError(err, 'SNS Publish');
    return [o.reason, o.retryable];
  };
  assert.deepEqual(c(e('Throttling', 400)), ['rateLimited', true]);
  assert.deepEqual(c(e('ThrottlingException', 400)), ['rateLimited', true]);
  assert.deepEqual(c(e('InternalError', 500, { $fault: 'server' })), ['serverError', true]);
  assert.deepEqual(c(e('AuthorizationError', 403, { $fault: 'client' })), ['authError', false]);
  assert.deepEqual(c(e('ExpiredTokenException', 400, { $fault: 'client' })), ['authError', true]);
  assert.deepEqual(c(e('InvalidParameter', 400, { $fault: 'client' })), ['clientError', false]);
  assert.deepEqual(c(e('NotFound', 404, { $fault: 'client' })), ['clientError', false]);
  assert.deepEqual(c(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), ['network', true]);
  assert.deepEqual(c(e('CredentialsProviderError')), ['authError', true]);
  assert.match(classifyAwsError(e('InvalidParameter', 400, { $fault: 'client' }), 'SNS Publish to x').message, /^SNS Publish to x failed: InvalidParameter: InvalidParameter message$/);
});

test('with no endpoint setting, the SDK’s standard AWS_ENDPOINT_URL_SNS variable is honoured', async () => {
  process.env.AWS_ENDPOINT_URL_SNS = sns.url;
  try {
    await withRouter(fsYaml().replace(`endpoint: ${sns.url}`, ''), async (r) => {
      const from = sns.published.length;
      assert.equal((await r.post(F6)).status, 200);
      const [p] = await nextPublished(from);
      assert.equal(p.attributes.rule.StringValue, 'Write below binary dir');
    });
  } finally {
    delete process.env.AWS_ENDPOINT_URL_SNS;
  }
});

/** A queued event (as ingest stores it) with marker n; `pad` lengthens its output. */
function stored(n: number, opts: { rule?: string; pad?: number } = {}): string {
  const ev = checkEvent(decodeEvent(falcoEvent(n, 'Warning', opts.rule)));
  if (opts.pad) ev.output = `${ev.output} ${'x'.repeat(opts.pad)}`;
  return serializeEvent({ ...ev, uuid: randomUUID() });
}

/** The marker n of a published message (its output ends with `n=<n>)`). */
const markerOf = (p: Published) => Number(/ n=(\d+)\)/.exec(p.message)?.[1] ?? -1);
const entryCount = (c: SnsCall) => Object.keys(c.params).filter((k) => /^PublishBatchRequestEntries\.member\.\d+\.Id$/.test(k)).length;
const callBytes = (ps: Published[]) =>
  ps.reduce(
    (n, p) =>
      n +
      Buffer.byteLength(p.message) +
      Buffer.byteLength(p.subject ?? '') +
      Object.entries(p.attributes).reduce((m, [k, v]) => m + Buffer.byteLength(k) + Buffer.byteLength(v.DataType) + Buffer.byteLength(v.StringValue), 0),
    0,
  );

async function enqueue(r: TestRouter, events: string[]): Promise<void> {
  await r.queue.enqueue(new Map([['awssns', events]]), Date.now());
}

test('a batch of 25 events is published in 3 PublishBatch calls (10, 10, 5), each message with the attributes Publish had', async () => {
  await withRouter(fsYaml(), async (r) => {
    const events = Array.from({ length: 25 }, (_, i) => stored(i));
    const mark = sns.calls.length;
    const from = sns.published.length;
    await enqueue(r, events);
    const got = await nextPublished(from, 25);
    const calls = sns.calls.slice(mark);
    assert.ok(calls.every((c) => c.action === 'PublishBatch' && c.error === undefined && c.entries!.every((e) => e.error === undefined)));
    assert.deepEqual(calls.map(entryCount).sort((a, b) => b - a), [10, 10, 5]);
    for (const c of calls) assert.equal(new Set(c.entries!.map((e) => e.id)).size, c.entries!.length, 'ids unique within a call');
    assert.deepEqual(got.map(markerOf).sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i), 'each event once');
    for (const p of got) {
      const ev = deserializeEvent(events[markerOf(p)]);
      assert.equal(p.message, ev.output);
      assert.deepEqual(p.attributes, messageAttributes(ev, []).attributes);
      assert.deepEqual(p.attributes['test.n'], { DataType: 'Number', StringValue: String(markerOf(p)) });
      assert.deepEqual(p.attributeOrder.slice(0, 5), ['priority', 'rule', 'source', 'hostname', 'tags']);
      assert.equal(p.subject, undefined);
      assert.equal(p.groupId, undefined);
    }
    await delay(100);
    assert.equal(sns.calls.length, mark + 3, 'no further call');
  });
});

test('calls stay within 256 KiB in total (messages, attributes and subjects): large messages take several calls', async () => {
  await withRouter(fsYaml({ extra: "subject: '[{{ .Priority }}] {{ .Rule }}'" }), async (r) => {
    // Ten messages of ~60 KB (four fit in a call), then one over 256 KiB, shortened to fill a call alone.
    const events = [...Array.from({ length: 10 }, (_, i) => stored(i, { pad: 60_000 })), stored(10, { pad: 300_000 })];
    const mark = sns.calls.length;
    const from = sns.published.length;
    await enqueue(r, events);
    const got = await nextPublished(from, 11);
    const calls = sns.calls.slice(mark);
    assert.deepEqual(calls.map((c) => [entryCount(c), c.error ?? 'ok']), [[4, 'ok'], [4, 'ok'], [2, 'ok'], [1, 'ok']]);
    for (let i = 0; i < calls.length; i++) {
      const bytes = callBytes(got.filter((p) => p.call === mark + i));
      assert.ok(bytes <= MAX_BATCH_BYTES, `call ${i}: ${bytes} bytes`);
    }
    const last = got.find((p) => p.call === mark + 3)!;
    assert.equal(markerOf(last), 10);
    assert.match(last.message, /x…\[truncated by falco-router: \d+ bytes\]$/);
    assert.equal(last.subject, '[Warning] Read sensitive file untrusted');
    const lastBytes = callBytes([last]);
    assert.ok(lastBytes <= MAX_BATCH_BYTES && lastBytes > MAX_BATCH_BYTES - 64, `${lastBytes} bytes`);
    assert.deepEqual(got.map(markerOf).sort((a, b) => a - b), Array.from({ length: 11 }, (_, i) => i));
  });
});

test('failed entries that may succeed later (throttling, internal errors) are retried alone: every event arrives exactly once', async () => {
  await withRouter(fsYaml(), async (r) => {
    try {
      sns.failEntries({ code: 'Throttling', message: 'Rate exceeded', senderFault: false, n: 1, match: (m) => m.message.endsWith(' n=3)') });
      sns.failEntries({ code: 'InternalError', message: 'Internal failure', senderFault: false, n: 1, match: (m) => m.message.endsWith(' n=17)') });
      const mark = sns.calls.length;
      const from = sns.published.length;
      await enqueue(r, Array.from({ length: 25 }, (_, i) => stored(i)));
      await waitFor(() => sns.calls.length >= mark + 4 && sns.calls[mark + 3].entries !== undefined, 5000, 'the retry');
      await delay(100);
      const calls = sns.calls.slice(mark);
      assert.equal(calls.length, 4);
      assert.deepEqual(calls.slice(0, 3).flatMap((c) => c.entries!.filter((e) => e.error).map((e) => e.error)).sort(), ['InternalError', 'Throttling']);
      assert.deepEqual(calls[3].entries, [{ id: '0', error: undefined }, { id: '1', error: undefined }], 'the retry sends only the two failed');
      const got = sns.published.slice(from);
      assert.deepEqual(got.map(markerOf).sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i), 'each event exactly once');
      // One line per error, each naming only its own event.
      const failed = r.logs.filter((l) => l.includes('delivery attempt failed')).map((l) => JSON.parse(l) as { reason: string; events: number; final: boolean; msg: string });
      assert.deepEqual(failed.map((f) => [f.reason, f.events, f.final]).sort(), [['rateLimited', 1, false], ['serverError', 1, false]]);
      assert.ok(failed.some((f) => f.msg.endsWith(`SNS PublishBatch to ${TOPIC}: Throttling: Rate exceeded`)));
      assert.ok(failed.some((f) => f.msg.endsWith(`SNS PublishBatch to ${TOPIC}: InternalError: Internal failure`)));
    } finally {
      sns.clearEntryFailures();
    }

    // A whole call throttled while the others of the send went out: only its events are sent again.
    sns.throttle(1, 1);
    const mark = sns.calls.length;
    const from = sns.published.length;
    await enqueue(r, Array.from({ length: 25 }, (_, i) => stored(100 + i)));
    await nextPublished(from, 25);
    await delay(100);
    const calls = sns.calls.slice(mark);
    assert.equal(calls.length, 4);
    const throttled = calls.filter((c) => c.error === 'Throttling');
    assert.equal(throttled.length, 1);
    assert.equal(entryCount(calls[3]), entryCount(throttled[0]));
    assert.deepEqual(sns.published.slice(from).map(markerOf).sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => 100 + i));
  });
});

test('an entry SNS refuses (SenderFault) is dead-lettered alone at once, with SNS’s code and message as the reason; the others are published once', async () => {
  await withRouter(fsYaml(), async (r) => {
    try {
      sns.failEntries({ code: 'InvalidParameter', message: 'Invalid parameter: forbidden character', senderFault: true, match: (m) => m.message.endsWith(' n=7)') });
      const events = Array.from({ length: 12 }, (_, i) => stored(i));
      const mark = sns.calls.length;
      const from = sns.published.length;
      await enqueue(r, events);
      await waitFor(async () => (await r.queue.deadLetterCount('awssns')) > 0, 5000, 'a dead letter');
      await delay(100);
      assert.deepEqual(sns.calls.slice(mark).map(entryCount), [10, 2], 'not retried');
      assert.deepEqual(sns.published.slice(from).map(markerOf).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]);
      const dead = await r.queue.listDeadLetters('awssns');
      // Only the refused event: the 11 others went out and must not come back on a re-queue.
      assert.equal(dead.length, 1);
      assert.equal(dead[0].event, events[7]);
      assert.equal(dead[0].attempts, 1);
      assert.equal(dead[0].reason, `SNS PublishBatch to ${TOPIC}: InvalidParameter: Invalid parameter: forbidden character`);
      const failed = r.logs.filter((l) => l.includes('delivery attempt failed'));
      assert.equal(failed.length, 1);
      assert.match(failed[0], new RegExp(`"reason":"clientError".*"events":1,"final":true,"uuid":"${deserializeEvent(events[7]).uuid}"`));
    } finally {
      sns.clearEntryFailures();
    }
  });
});

/** The adapter alone (no router), for what it reports to the pipeline per entry. */
async function adapter(t: { after(fn: () => unknown): void }, topicarn = TOPIC) {
  const { out } = await createAdapter(t, awsSns, { topicarn, region: 'eu-west-1', accesskeyid: 'AKIDSNS', secretaccesskey: 'sns-s3cr3t', checkidentity: false, endpoint: sns.url });
  return out;
}
const markers = (events: readonly StoredEvent[]) => events.map((e) => markerOfJson(e.json));

test('reports each PublishBatch entry on its own: published ones delivered, a throttled one failed for a retry, a refused one failed for good', async (t) => {
  const out = await adapter(t);
  try {
    sns.failEntries({ code: 'Throttling', message: 'Rate exceeded', senderFault: false, n: 1, match: (m) => m.message.endsWith(' n=2)') });
    sns.failEntries({ code: 'InvalidParameter', message: 'Invalid parameter: forbidden character', senderFault: true, match: (m) => m.message.endsWith(' n=4)') });
    const mark = sns.calls.length;
    const ctx = sendContext();
    await out.send(Array.from({ length: 6 }, (_, i) => new StoredEvent(stored(i))), ctx);
    assert.equal(sns.calls.length, mark + 1, 'one PublishBatch call');
    assert.deepEqual(markers(ctx.reported.delivered), [0, 1, 3, 5]);
    assert.deepEqual(
      ctx.reported.failed.map((f) => [markers(f.events), f.error.reason, f.error.retryable, f.error.status]),
      [
        [[2], 'rateLimited', true, 'Throttling'],
        [[4], 'clientError', false, 'InvalidParameter'],
      ],
    );
  } finally {
    sns.clearEntryFailures();
  }
});

test('FIFO: a throttled entry or call stops the calls after it, so the rest of the batch waits for the retry instead of overtaking it', async (t) => {
  const out = await adapter(t, FIFO);
  const batch = () => Array.from({ length: 25 }, (_, i) => new StoredEvent(stored(200 + i)));
  try {
    sns.failEntries({ code: 'Throttling', message: 'Rate exceeded', senderFault: false, n: 1, match: (m) => m.message.endsWith(' n=203)') });
    const mark = sns.calls.length;
    const ctx = sendContext();
    await out.send(batch(), ctx);
    assert.equal(sns.calls.length, mark + 1, 'the calls of 10 and 5 after it are not made');
    assert.deepEqual(markers(ctx.reported.delivered), [200, 201, 202, 204, 205, 206, 207, 208, 209]);
    // The same error for the throttled entry and the calls not made: the pipeline retries them together, in order.
    const [first, ...others] = ctx.reported.failed;
    assert.ok(others.every((f) => f.error === first.error));
    assert.deepEqual(markers(ctx.reported.failed.flatMap((f) => f.events)), [203, ...Array.from({ length: 15 }, (_, i) => 210 + i)]);
    assert.equal(first.error.reason, 'rateLimited');
  } finally {
    sns.clearEntryFailures();
  }

  sns.throttle(1);
  const mark = sns.calls.length;
  const ctx = sendContext();
  await out.send(batch(), ctx);
  assert.equal(sns.calls.length, mark + 1);
  assert.deepEqual(ctx.reported.delivered, []);
  assert.equal(ctx.reported.failed.flatMap((f) => f.events).length, 25);
  assert.ok(ctx.reported.failed.every((f) => f.error === ctx.reported.failed[0].error && f.error.reason === 'rateLimited' && f.error.retryable));
});

test('a call throttled while another, refused as a whole, is being published one by one: no single call starts after the throttling, the rest waits for the retry', async (t) => {
  const out = await adapter(t);
  // Two calls of 10 at once: the first to arrive is refused, late enough for the other's
  // throttling to come back before the refused one's messages would go out alone.
  sns.throttle(1, 1);
  sns.refuse(1, 'InvalidParameter', 'Invalid parameter: something in this batch', 0, { delayMs: 200 });
  const mark = sns.calls.length;
  const ctx = sendContext();
  await out.send(Array.from({ length: 20 }, (_, i) => new StoredEvent(stored(300 + i))), ctx);
  assert.deepEqual(sns.calls.slice(mark).map((c) => [entryCount(c), c.error]).sort(), [[10, 'InvalidParameter'], [10, 'Throttling']]);
  assert.deepEqual(ctx.reported.delivered, []);
  assert.equal(ctx.reported.failed.flatMap((f) => f.events).length, 20);
  assert.ok(ctx.reported.failed.every((f) => f.error.reason === 'rateLimited' && f.error.retryable), 'retried, not dead-lettered as refused');
});

test('FIFO topics: each entry has its own MessageGroupId and MessageDeduplicationId, calls go one after the other in queue order', async () => {
  await withRouter(fsYaml({ topic: FIFO }), async (r) => {
    try {
      const rules = ['Rule A', 'Rule B', 'Rule C'];
      const events = Array.from({ length: 14 }, (_, i) => stored(i, { rule: rules[i % 3] }));
      events.push(serializeEvent({ ...deserializeEvent(events[0]), uuid: randomUUID() })); // the same alert again
      sns.failEntries({ code: 'InternalError', message: 'Internal failure', senderFault: false, n: 1, match: (m) => m.message.endsWith(' n=12)') });
      const mark = sns.calls.length;
      const from = sns.published.length;
      await enqueue(r, events);
      const got = await nextPublished(from, 15);
      await delay(100);
      const calls = sns.calls.slice(mark);
      assert.deepEqual(calls.map(entryCount), [10, 5, 1], 'the failed entry alone in the retry');
      // One call at a time: SNS receives the batch in queue order (the retried entry comes last).
      assert.deepEqual(got.map(markerOf), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 0, 12]);
      for (const p of got) {
        const ev = deserializeEvent(events.find((e) => deserializeEvent(e).output === p.message)!);
        assert.equal(p.groupId, fifoId(ev.rule));
        assert.equal(p.dedupId, deduplicationId(ev));
      }
      assert.deepEqual([...new Set(got.map((p) => p.groupId))].sort(), ['Rule_A', 'Rule_B', 'Rule_C']);
      assert.equal(new Set(got.map((p) => p.dedupId)).size, 14);
      assert.deepEqual(got.filter((p) => p.duplicate).map(markerOf), [0], 'the repeated alert is deduplicated within the batch');
      const retried = got.at(-1)!;
      assert.equal(calls[2].params['PublishBatchRequestEntries.member.1.MessageDeduplicationId'], retried.dedupId);
      assert.equal(calls[2].params['PublishBatchRequestEntries.member.1.MessageGroupId'], 'Rule_A');
    } finally {
      sns.clearEntryFailures();
    }
  });
});

test('a call refused as a whole (bad request) is repeated one message per call, so only a bad message would fail', async () => {
  await withRouter(fsYaml(), async (r) => {
    sns.refuse(1, 'InvalidParameter', 'Invalid parameter: something in this batch');
    const mark = sns.calls.length;
    const from = sns.published.length;
    await enqueue(r, Array.from({ length: 5 }, (_, i) => stored(i)));
    const got = await nextPublished(from, 5);
    await delay(100);
    assert.deepEqual(sns.calls.slice(mark).map((c) => [entryCount(c), c.error ?? 'ok']), [[5, 'InvalidParameter'], [1, 'ok'], [1, 'ok'], [1, 'ok'], [1, 'ok'], [1, 'ok']]);
    assert.deepEqual(got.map(markerOf), [0, 1, 2, 3, 4]);
    assert.equal(await r.queue.deadLetterCount('awssns'), 0);
    assert.ok(r.logs.some((l) => l.includes('publishing its 5 messages one per call')));
  });
});

test('a topic that does not exist: the calls are refused, two messages alone tell it is not about one message, and the batch is dead-lettered without trying the rest', async () => {
  await withRouter(fsYaml(), async (r) => {
    sns.refuse(1000, 'NotFound', 'Topic does not exist');
    try {
      const mark = sns.calls.length;
      await enqueue(r, Array.from({ length: 25 }, (_, i) => stored(i)));
      await waitFor(async () => (await r.queue.deadLetterCount('awssns')) === 25, 5000, '25 dead letters');
      await delay(100);
      const calls = sns.calls.slice(mark);
      // The three calls are refused at once; each tries its messages alone until one of them has seen two refused.
      const sizes = calls.map(entryCount).sort((a, b) => b - a);
      assert.deepEqual(sizes.slice(0, 3), [10, 10, 5]);
      const singles = sizes.slice(3);
      assert.ok(singles.every((n) => n === 1) && singles.length >= 2 && singles.length <= 6, `single calls: ${singles.length}`);
      const dead = await r.queue.listDeadLetters('awssns');
      assert.ok(dead.every((d) => d.attempts === 1 && d.reason === `SNS PublishBatch to ${TOPIC} failed: NotFoundException: Topic does not exist`));
    } finally {
      sns.refuse(0, 'NotFound', '');
    }
  });
});

test('a last attempt that times out dead-letters only the messages that did not go out', async () => {
  const yaml = fsYaml().replace('attempts: 5', 'attempts: 1').replace('timeout: 5s', 'timeout: 500ms');
  await withRouter(yaml, async (r) => {
    // Calls of 10 and 2 go out together; the one carrying n=11 is never answered.
    sns.stall((body) => body.includes('n%3D11%29'));
    try {
      const events = Array.from({ length: 12 }, (_, i) => stored(i));
      const from = sns.published.length;
      await enqueue(r, events);
      await waitFor(async () => (await r.queue.deadLetterCount('awssns')) > 0, 5000, 'a dead letter');
      await delay(200);
      assert.deepEqual(sns.published.slice(from).map(markerOf).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const dead = await r.queue.listDeadLetters('awssns');
      assert.deepEqual(dead.map((d) => d.event).sort(), [events[10], events[11]].sort(), 'only the two unanswered messages');
      assert.match(dead[0].reason, /timed out/);
    } finally {
      sns.stall(undefined);
    }
  });
});
