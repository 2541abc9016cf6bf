import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAndEnrich as enrichToJson, type EnrichSettings } from '../../src/event/enrich.ts';
import { serializeEvent, deserializeEvent, eventTimeMs } from '../../src/event/falco-event.ts';
import { BadEventError } from '../../src/errors.ts';
import { readAlertBody } from '../../src/ingest/alert-body.ts';
import { GoTemplate } from '../../src/event/template.ts';
import { F1, F6 } from '../fixtures/events.ts';

const none: EnrichSettings = { customfields: {}, customtags: [], templatedfields: {}, bracketreplacer: '', outputfieldformat: '' };
const noWarn = () => {};
const parseAndEnrich = async (body: string, s: EnrichSettings, warn: typeof noWarn) => (await enrichToJson(body, s, warn)).event;

async function rejects(body: string, message: RegExp, s = none) {
  await assert.rejects(parseAndEnrich(body, s, noWarn), (err: unknown) => {
    assert.ok(err instanceof BadEventError, `expected BadEventError, got ${String(err)}`);
    assert.match((err as Error).message, message);
    return true;
  });
}

test('keeps int64 output fields exact through parse and serialise', async () => {
  const ev = await parseAndEnrich(F6, none, noWarn);
  const json = serializeEvent(ev);
  assert.match(json, /"evt\.time":1507591916746609046[,}]/);
  assert.match(serializeEvent(deserializeEvent(json)), /"evt\.time":1507591916746609046[,}]/);
});

test('writes the webhook body in falcosidekick key order, fields sorted, tags sorted', async () => {
  const ev = await parseAndEnrich(F1, none, noWarn);
  const body = serializeEvent({ ...ev, uuid: '00000000-0000-4000-8000-000000000000' });
  assert.equal(
    body,
    '{"uuid":"00000000-0000-4000-8000-000000000000","output":"This is a test from falcosidekick","priority":"Debug","rule":"Test rule","time":"2001-01-01T01:10:00Z","output_fields":{"proc.name":"falcosidekick","proc.tty":1234},"source":"internal","tags":["example","test"],"hostname":"test-host"}',
  );
});

test('sets source syscalls by default, omits empty tags, and gives each event a fresh uuid', async () => {
  const a = await parseAndEnrich(F6, none, noWarn);
  const b = await parseAndEnrich(F6, none, noWarn);
  assert.equal(a.source, 'syscalls');
  assert.ok(!serializeEvent(a).includes('"tags"'));
  assert.match(a.uuid, /^[0-9a-f-]{36}$/);
  assert.notEqual(a.uuid, b.uuid);
});

test('accepts priorities in any case and the info alias, and writes the canonical name', async () => {
  for (const [given, canonical] of [['WARNING', 'Warning'], ['info', 'Informational'], ['eMeRgEnCy', 'Emergency']]) {
    const ev = await parseAndEnrich(F6.replace('"priority":"Error"', `"priority":"${given}"`), none, noWarn);
    assert.equal(ev.priority, canonical);
  }
});

test('matches top-level keys case-insensitively and drops unknown keys', async () => {
  const ev = await parseAndEnrich(F6.replace('"priority"', '"PRIORITY"').replace('"hostname"', '"message":"x","Hostname"'), none, noWarn);
  assert.equal(ev.priority, 'Error');
  assert.equal(ev.hostname, 'localhost');
  assert.ok(!serializeEvent(ev).includes('"message"'));
});

test('says exactly what is wrong with a bad event', async () => {
  await rejects(F6.replace('"priority":"Error"', '"priority":"warn"'), /"priority": "warn" is not a Falco priority/);
  await rejects(F6.replace('"priority":"Error"', '"priority":5'), /"priority" must be a string, not the number 5/);
  await rejects(F6.replace('"priority":"Error",', ''), /"priority" is missing/);
  await rejects(F6.replace('"rule":"Write below binary dir"', '"rule":""'), /"rule" is missing or empty/);
  await rejects(F6.replace('"2019-05-17T15:31:56.746609046Z"', '1558107116'), /"time" must be a string/);
  await rejects(F6.replace('"2019-05-17T15:31:56.746609046Z"', '"2019-05-17 15:31:56"'), /"time": "2019-05-17 15:31:56" is not an RFC 3339 time/);
  await rejects(F6.replace('"2019-05-17T15:31:56.746609046Z"', '"2019-02-30T15:31:56Z"'), /is not an RFC 3339 time/);
  await rejects(F6.replace(/"output_fields": \{.*\}\}$/, '"output_fields": [1,2]}'), /"output_fields" must be an object, not an array/);
  await rejects(F6.replace(/, "output_fields": \{.*\}\}$/, '}'), /"output_fields" is missing or empty/);
  await rejects('{"tags":"a",' + F6.slice(1), /"tags" must be an array of strings/);
  await rejects('[1,2]', /must be a JSON object, not an array/);
  await rejects('{"priority": "Error", ', /not valid JSON/);
});

test('never crashes on odd field types such as a numeric k8s.ns.name', async () => {
  const ev = await parseAndEnrich(
    F6.replace('"user.name":"root"', '"user.name":"root","k8s.ns.name":42,"k8s.pod.name":{"a":[true,null]},"x":null'),
    none,
    noWarn,
  );
  assert.match(serializeEvent(ev), /"k8s\.ns\.name":42,"k8s\.pod\.name":\{"a":\[true,null\]\}/);
});

test('normalises times as Go does and computes epoch milliseconds', async () => {
  const ev = await parseAndEnrich(F6.replace('"2019-05-17T15:31:56.746609046Z"', '"2019-05-17T17:31:56.500+02:00"'), none, noWarn);
  assert.equal(ev.time, '2019-05-17T17:31:56.5+02:00');
  assert.equal(eventTimeMs('2019-05-17T15:31:56.746609046Z'), 1558107116746);
});

test('applies customfields, customtags, templatedfields, bracketreplacer and outputfieldformat', async () => {
  const s: EnrichSettings = {
    customfields: { cluster: 'prod', 'user.name': 'overridden' },
    customtags: ['team-a'],
    templatedfields: { ns: new GoTemplate('ns', '{{ or (index . "k8s.ns.name") "none" }}') },
    bracketreplacer: '_',
    outputfieldformat: '<timestamp>: <priority> <output> (<custom_fields>) <tags>',
  };
  const ev = await parseAndEnrich(F6.replace('"user.name":"root"', '"user.name":"root","proc.aname[2]":"sshd"'), s, noWarn);
  assert.equal(ev.output_fields.cluster, 'prod');
  assert.equal(ev.output_fields['user.name'], 'overridden');
  assert.equal(ev.output_fields.ns, 'none');
  assert.equal(ev.output_fields['proc.aname_2'], 'sshd');
  assert.equal(ev.output_fields['proc.aname[2]'], undefined);
  assert.deepEqual(ev.tags, ['team-a']);
  assert.match(ev.output, /^16:31:56\.746609046: Error File below .* \(cluster=prod user\.name=overridden\) team-a$/);
});

test('accepts an event without output_fields when custom fields are configured', async () => {
  const ev = await parseAndEnrich(F6.replace(/, "output_fields": \{.*\}\}$/, '}'), { ...none, customfields: { a: 'b' } }, noWarn);
  assert.deepEqual(Object.keys(ev.output_fields), ['a']);
});

test('cuts long fields of a large payload at 507 bytes plus a marker, also inside output', async () => {
  const long = 'x'.repeat(5000);
  const ev = await parseAndEnrich(F6.replace('"fd.name":"/bin/hack"', `"fd.name":"${long}"`).replace('file=/bin/hack', `file=${long}`), none, noWarn);
  const cut = ev.output_fields['fd.name'] as string;
  assert.equal(cut, 'x'.repeat(507) + '[...]');
  assert.ok(ev.output.includes(`file=${cut}`));
  assert.ok(!ev.output.includes(long));
});

test('escapes <, > and & as Go does', async () => {
  const ev = await parseAndEnrich(F6.replace('touch /bin/hack"', 'a<b>&c"'), none, noWarn);
  assert.match(serializeEvent(ev), /a\\u003cb\\u003e\\u0026c/);
});

test('keeps every unsafe number exact, wherever it sits, and leaves strings alone', async () => {
  const { parseLossless, stringifyLossless } = await import('../../src/event/json.ts');
  const text =
    '{"a":"x \\" 12345678901234567890 \\\\","b":[-9223372036854775808,1.5e400,0.12345678901234567890,12],"c":{"d":18446744073709551615},"e":"\\\\\\"1234567890123456789"}';
  const back = stringifyLossless(parseLossless(text));
  assert.equal(back, text);
  assert.throws(() => parseLossless('{"a":"\\u0000#LN#1"}'), /reserved/);
  // Spelled with other escapes, the marker is still refused (it would otherwise corrupt the stored JSON).
  assert.throws(() => parseLossless('{"a":"\\u0000\\u0023LN#1,\\"b\\":\\"c"}'), /reserved/);
  assert.equal((parseLossless('{"a":"\\u0000 plain NUL"}') as { a: string }).a, "\u0000 plain NUL");
  assert.throws(() => parseLossless('{"a":01234567890123456789}'), /invalid number/);
});

test('stores output_fields as they arrived only when that is byte-for-byte what re-serialising writes', async () => {
  const { parseLosslessKeepingText } = await import('../../src/event/json.ts');
  const { falcoEvent } = await import('../fixtures/events.ts');
  const wrap = (fields: string) => `{"output":"o <b> & c","priority":"Warning","rule":"r","time":"2025-04-02T15:15:03.1Z","output_fields":${fields},"tags":["b","a"]}`;
  // [fields text, kept as it came?]
  const cases: Array<[string, boolean]> = [
    ['{"a":"x","b":1,"c":-1,"d":1507591916746609046,"e":null,"f":true,"g":1.5,"h":1e5}', true],
    ['{"a":"q\\"uo\\\\te\\n\\t\\u001b\\u003c<&>","b":"\\u2028"}', true],
    ['{"b":1,"a":2}', false],
    ['{"a":1,"a":2}', false],
    ['{"a": 1}', false],
    ['{"a":1.50}', false],
    ['{"a":-0}', false],
    ['{"a":"\\/"}', false],
    ['{"a":"\\u00e9"}', false],
    ['{"a":"\\u001B"}', false],
    ['{"a\\u0062":1}', false],
    ['{"a":[1,2]}', false],
    // An escape right after another one is checked too.
    ['{"a":"\\n\\/"}', false],
    ['{"a":"\\n\\u00e9"}', false],
    ['{"a":"\\"\\u0008"}', false],
    ['{"a":"\\\\\\u003C"}', false],
    // Go sorts keys as strings: "10" before "2", on both paths.
    ['{"10":1,"2":2}', true],
    ['{"a":{"b":1}}', false],
  ];
  for (const [fields, kept] of cases) {
    const body = wrap(fields);
    assert.equal(parseLosslessKeepingText(body, 'output_fields').keptText !== undefined, kept, fields);
    const { event, json } = await enrichToJson(body, none, noWarn);
    assert.equal(json, serializeEvent(event), fields);
  }
  // Key case variants and repeated keys are decoded as falcosidekick does, never taken as they came.
  for (const body of [
    '{"priority":"Warning","rule":"r","time":"2025-04-02T15:15:03Z","output_fields":{"a":1},"Output_Fields":{"b":2}}',
    '{"priority":"Warning","rule":"r","time":"2025-04-02T15:15:03Z","output_fields":{"a":1},"output_fields":{"b":2}}',
  ]) {
    assert.equal(parseLosslessKeepingText(body, 'output_fields').keptText, undefined);
    assert.match((await enrichToJson(body, none, noWarn)).json, /"output_fields":\{"b":2\}/);
  }
  // Falco's own events take the fast path; enrichment that changes the fields leaves it.
  assert.notEqual(parseLosslessKeepingText(falcoEvent(1), 'output_fields').keptText, undefined);
  const fast = await enrichToJson(falcoEvent(1), none, noWarn);
  assert.equal(fast.json, serializeEvent(fast.event));
  assert.match((await enrichToJson(falcoEvent(1), { ...none, customfields: { zz: 'added' } }, noWarn)).json, /"zz":"added"\}/);
});

const withFields = (fields: string) => `{"output":"x","priority":"Error","rule":"r","time":"2019-05-17T15:31:56Z","output_fields":${fields}}`;

test('keeps a __proto__ key wherever the alert carries it, as data, without touching any prototype', async () => {
  for (const fields of [
    '{"p":{"z":1,"__proto__":{"polluted":"yes"},"a":2},"__proto__":{"top":1}}',
    '{"p":{"__proto__":{"n":12345678901234567890}},"q":[{"__proto__":{"x":"y"}}]}',
  ]) {
    const { json } = await enrichToJson(withFields(fields), { ...none, bracketreplacer: '_' }, noWarn);
    const stored = JSON.parse(json).output_fields;
    assert.deepEqual(Object.keys(stored).sort(), Object.keys(JSON.parse(fields)).sort(), json);
    assert.ok(json.includes('"__proto__":{'), json);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  }
  const { json } = await enrichToJson(withFields('{"p":{"z":1,"__proto__":{"polluted":"yes"},"a":2}}'), none, noWarn);
  assert.match(json, /"p":\{"__proto__":\{"polluted":"yes"\},"a":2,"z":1\}/);
});

test('refuses objects or arrays nested deeper than 32 levels, naming the limit, instead of running out of stack', async () => {
  await rejects(withFields(`{"a":${'['.repeat(3000)}${']'.repeat(3000)}}`), /nested more than 32 levels deep/);
  await rejects(withFields(`{"a":${'{"b":'.repeat(5000)}1${'}'.repeat(5000)}}`), /nested more than 32 levels deep/);
  await rejects(`{"output":"\\u0000",${withFields(`{"a":${'['.repeat(100)}${']'.repeat(100)}}`).slice(1)}`, /nested more than 32 levels deep/);
  const ok = await parseAndEnrich(withFields(`{"a":${'['.repeat(30)}1${']'.repeat(30)}}`), none, noWarn);
  assert.ok(ok.output_fields.a);
});

// The timeout is a safety net, not a speed assertion: the check used to backtrack quadratically
// over the whole body (40,000 digits took 0.8 s, so 1 MiB would block ingest for minutes).
test('a body that starts like a plain-text Falco line and then runs on for 1 MiB is refused at once', { timeout: 60_000 }, async () => {
  const warn = () => {};
  for (const body of [`2024-01-01T${'1'.repeat(1 << 20)}`, `12:34:56.${'7'.repeat(1 << 20)}`]) {
    await assert.rejects(readAlertBody(body, '', none, warn), (err: unknown) => err instanceof BadEventError && err.reason === 'invalidEvent');
  }
  await assert.rejects(
    readAlertBody('2019-05-17T15:31:56.746609046+0000: Error File below a known binary directory opened for writing', '', none, warn),
    (err: unknown) => err instanceof BadEventError && err.reason === 'plainText',
  );
  await assert.rejects(readAlertBody('  ', '', none, warn), (err: unknown) => err instanceof BadEventError && err.reason === 'emptyBody');
});
