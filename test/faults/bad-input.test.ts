/**
 * The bad-input corpus: every way a request can be wrong, one row each. Each gets a clear 4xx (or
 * is accepted as valid, exactly), never a 500 or an error line in the log, and the router keeps
 * serving: after every row, /healthz answers and a good alert is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { connect } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestRouter, tempDir } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { F6, falcoEvent } from '../fixtures/events.ts';

const T = '2019-05-17T15:31:56.746609046Z';
/** An alert with one field replaced (`undefined` removes it), as raw JSON text. */
function alert(over: Record<string, string | undefined>): string {
  const fields: Record<string, string> = {
    output: '"16:31:56.746609046: Error x"',
    priority: '"Error"',
    rule: '"Write below binary dir"',
    time: `"${T}"`,
    output_fields: '{"fd.name":"/bin/hack","proc.name":"touch"}',
    hostname: '"node-1"',
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete fields[k];
    else fields[k] = v;
  }
  return `{${Object.entries(fields).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
}
const withFields = (json: string) => alert({ output_fields: json });

interface Row {
  name: string;
  body: string | Buffer;
  headers?: Record<string, string>;
  method?: string;
  status: number;
  /** The answer's text matches this. */
  says?: RegExp;
  /** For an accepted alert: the stored JSON matches this. */
  stored?: RegExp;
}

const BODY_LIMIT = 64 * 1024;

const rows: Row[] = [
  { name: 'empty body', body: '', status: 400, says: /the body is empty/ },
  { name: 'only whitespace', body: ' \n\t ', status: 400, says: /the body is empty/ },
  { name: 'not JSON', body: 'hello', status: 400, says: /not valid JSON/ },
  { name: 'truncated JSON', body: '{"priority":"Error"', status: 400, says: /not valid JSON/ },
  { name: 'a JSON array', body: '[]', status: 400, says: /must be a JSON object, not an array/ },
  { name: 'JSON null', body: 'null', status: 400, says: /must be a JSON object, not null/ },
  { name: 'a JSON number', body: '42', status: 400, says: /not the number 42/ },
  { name: 'a JSON string', body: '"alert"', status: 400, says: /not the string/ },
  { name: 'JSON true', body: 'true', status: 400, says: /must be a JSON object/ },
  { name: 'a plain-text Falco line', body: '16:31:56.746609046: Error File below a known binary directory opened for writing', status: 400, says: /plain-text Falco alert.*json_output: true/ },
  { name: 'text/plain content type with text', body: 'Error something', headers: { 'content-type': 'text/plain' }, status: 400, says: /plain-text Falco alert/ },
  { name: 'priority missing', body: alert({ priority: undefined }), status: 400, says: /"priority" is missing/ },
  { name: 'priority empty', body: alert({ priority: '""' }), status: 400, says: /"priority" is missing/ },
  { name: 'priority unknown', body: alert({ priority: '"Severe"' }), status: 400, says: /"Severe" is not a Falco priority/ },
  { name: 'priority a number', body: alert({ priority: '4' }), status: 400, says: /"priority" must be a string, not the number 4/ },
  { name: 'priority an array', body: alert({ priority: '["Error"]' }), status: 400, says: /"priority" must be a string, not an array/ },
  { name: 'priority an object', body: alert({ priority: '{"p":1}' }), status: 400, says: /"priority" must be a string, not an object/ },
  { name: 'priority in lower case', body: alert({ priority: '"error"' }), status: 200, stored: /"priority":"Error"/ },
  { name: 'priority info', body: alert({ priority: '"info"' }), status: 200, stored: /"priority":"Informational"/ },
  { name: 'rule missing', body: alert({ rule: undefined }), status: 400, says: /"rule" is missing/ },
  { name: 'rule empty', body: alert({ rule: '""' }), status: 400, says: /"rule" is missing or empty/ },
  { name: 'rule a number', body: alert({ rule: '7' }), status: 400, says: /"rule" must be a string/ },
  { name: 'rule an object', body: alert({ rule: '{}' }), status: 400, says: /"rule" must be a string, not an object/ },
  { name: 'time missing', body: alert({ time: undefined }), status: 400, says: /"time" is missing/ },
  { name: 'time empty', body: alert({ time: '""' }), status: 400, says: /"time" is missing/ },
  { name: 'time not RFC 3339', body: alert({ time: '"yesterday"' }), status: 400, says: /not an RFC 3339 time/ },
  { name: 'time month 13', body: alert({ time: '"2019-13-01T00:00:00Z"' }), status: 400, says: /not an RFC 3339 time/ },
  { name: 'time 30 February', body: alert({ time: '"2019-02-30T00:00:00Z"' }), status: 400, says: /not an RFC 3339 time/ },
  { name: 'time hour 25', body: alert({ time: '"2019-05-17T25:00:00Z"' }), status: 400, says: /not an RFC 3339 time/ },
  { name: 'time without zone', body: alert({ time: '"2019-05-17T15:31:56"' }), status: 400, says: /not an RFC 3339 time/ },
  { name: 'time a number', body: alert({ time: '1558107116' }), status: 400, says: /"time" must be a string/ },
  { name: 'time with an offset', body: alert({ time: '"2019-05-17T17:31:56.5+02:00"' }), status: 200, stored: /"time":"2019-05-17T17:31:56\.5\+02:00"/ },
  { name: 'time with trailing zeros', body: alert({ time: '"2019-05-17T15:31:56.500000000Z"' }), status: 200, stored: /"time":"2019-05-17T15:31:56\.5Z"/ },
  { name: 'time 29 February of a leap year', body: alert({ time: '"2024-02-29T00:00:00Z"' }), status: 200 },
  { name: 'output_fields missing', body: alert({ output_fields: undefined }), status: 400, says: /"output_fields" is missing or empty/ },
  { name: 'output_fields empty', body: withFields('{}'), status: 400, says: /"output_fields" is missing or empty/ },
  { name: 'output_fields an array', body: withFields('[1]'), status: 400, says: /"output_fields" must be an object, not an array/ },
  { name: 'output_fields a string', body: withFields('"x"'), status: 400, says: /"output_fields" must be an object/ },
  { name: 'output_fields a number', body: withFields('5'), status: 400, says: /"output_fields" must be an object, not the number 5/ },
  { name: 'output_fields a huge number', body: withFields('123456789012345678901234567890'), status: 400, says: /"output_fields" must be an object/ },
  { name: 'tags a string', body: alert({ tags: '"a,b"' }), status: 400, says: /"tags" must be an array of strings/ },
  { name: 'tags with a number', body: alert({ tags: '["a",1]' }), status: 400, says: /"tags" must be an array of strings/ },
  { name: 'tags an object', body: alert({ tags: '{"a":1}' }), status: 400, says: /"tags" must be an array of strings/ },
  { name: 'hostname a number', body: alert({ hostname: '1' }), status: 400, says: /"hostname" must be a string/ },
  { name: 'source an array', body: alert({ source: '["syscall"]' }), status: 400, says: /"source" must be a string/ },
  { name: 'output an object', body: alert({ output: '{}' }), status: 400, says: /"output" must be a string/ },
  { name: 'uuid a number', body: alert({ uuid: '1' }), status: 400, says: /"uuid" must be a string/ },
  { name: 'null fields are ignored', body: alert({ hostname: 'null', tags: 'null', source: 'null' }), status: 200, stored: /"source":"syscalls"/ },
  { name: 'unknown top-level keys are dropped', body: alert({ extra: '{"x":1}', Output2: '"y"' }), status: 200 },
  { name: 'keys in another case', body: `{"Output":"x","PRIORITY":"Error","Rule":"r","Time":"${T}","Output_Fields":{"a":"b"}}`, status: 200, stored: /"priority":"Error","rule":"r"/ },
  { name: 'a duplicate key: the last wins', body: alert({ priority: '"Debug","priority":"Critical"' }), status: 200, stored: /"priority":"Critical"/ },
  { name: 'int64 and big numbers stay exact', body: withFields('{"evt.time":1507591916746609046,"big":123456789012345678901234567890,"neg":-9223372036854775808}'), status: 200, stored: /"big":123456789012345678901234567890,"evt\.time":1507591916746609046,"neg":-9223372036854775808/ },
  { name: 'exponents and fractions stay exact', body: withFields('{"a":1e400,"b":1.50,"c":-0,"d":2.5E-3}'), status: 200, stored: /"a":1e400/ },
  { name: 'an invalid number', body: withFields('{"a":01}'), status: 400, says: /not valid JSON/ },
  { name: 'NaN', body: withFields('{"a":NaN}'), status: 400, says: /not valid JSON/ },
  { name: 'booleans and nulls as field values', body: withFields('{"a":true,"b":null,"c":false}'), status: 200, stored: /"a":true,"b":null,"c":false/ },
  { name: 'nested objects and arrays', body: withFields('{"a":{"b":[1,{"c":"d"}]}}'), status: 200, stored: /"a":\{"b":\[1,\{"c":"d"\}\]\}/ },
  { name: 'nested 32 deep, the limit', body: withFields(`{"a":${'['.repeat(30)}${']'.repeat(30)}}`), status: 200 },
  { name: 'nested 3,000 deep (arrays)', body: withFields(`{"a":${'['.repeat(3000)}${']'.repeat(3000)}}`), status: 400, says: /nested more than 32 levels deep/ },
  { name: 'nested 5,000 deep (objects)', body: withFields(`{"a":${'{"b":'.repeat(5000)}1${'}'.repeat(5000)}}`), status: 400, says: /nested more than 32 levels deep/ },
  { name: '__proto__ at the top of output_fields', body: withFields('{"__proto__":{"polluted":"yes"},"a":"b"}'), status: 200, stored: /"__proto__":\{"polluted":"yes"\}/ },
  { name: '__proto__ nested', body: withFields('{"p":{"z":1,"__proto__":{"polluted":"yes"},"a":2}}'), status: 200, stored: /"p":\{"__proto__":\{"polluted":"yes"\},"a":2,"z":1\}/ },
  { name: 'constructor and prototype keys', body: withFields('{"constructor":{"prototype":{"x":1}},"hasOwnProperty":"y"}'), status: 200, stored: /"constructor":\{"prototype":\{"x":1\}\},"hasOwnProperty":"y"/ },
  { name: 'a top-level __proto__ key', body: alert({ __proto__: '{"rule":"polluted"}' }), status: 200, stored: /"rule":"Write below binary dir"/ },
  { name: 'the reserved marker', body: withFields('{"a":"\\u0000#LN#1"}'), status: 400, says: /reserved/ },
  { name: 'the reserved marker spelled with escapes', body: withFields('{"a":"\\u0000\\u0023LN#1"}'), status: 400, says: /reserved/ },
  { name: 'a NUL character', body: withFields('{"a":"x\\u0000y"}'), status: 200, stored: /"a":"x\\u0000y"/ },
  { name: 'a lone surrogate', body: withFields('{"a":"\\ud800"}'), status: 200 },
  { name: 'emoji and right-to-left text', body: withFields('{"a":"🔥 שלום"}'), status: 200, stored: /🔥 שלום/ },
  { name: 'HTML in a field is escaped as Go does', body: withFields('{"a":"<script>&"}'), status: 200, stored: /\\u003cscript\\u003e\\u0026/ },
  { name: 'invalid UTF-8 bytes', body: Buffer.concat([Buffer.from(withFields('{"a":"').slice(0, -0)), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]), status: 400, says: /not valid JSON/ },
  { name: 'a UTF-8 byte order mark', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(F6)]), status: 400, says: /not valid JSON/ },
  { name: 'a long field (over 512 bytes, payload over 4 KiB) is cut as falcosidekick does', body: withFields(`{"a":"${'x'.repeat(5000)}"}`), status: 200, stored: /"a":"x{507}\[\.\.\.\]"/ },
  { name: 'just under the body limit', body: withFields(`{"a":"${'y'.repeat(BODY_LIMIT - 300)}"}`), status: 200 },
  { name: 'over the body limit', body: withFields(`{"a":"${'y'.repeat(BODY_LIMIT + 10)}"}`), status: 413, says: /too large/ },
  { name: 'gzip', body: gzipSync(F6), headers: { 'content-encoding': 'gzip' }, status: 200 },
  { name: 'gzip that is not gzip', body: 'not gzip', headers: { 'content-encoding': 'gzip' }, status: 400, says: /gzip body cannot be decoded/ },
  { name: 'a gzip bomb', body: gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20)), headers: { 'content-encoding': 'gzip' }, status: 413, says: /once decompressed/ },
  { name: 'gzip of bad JSON', body: gzipSync('{"a":'), headers: { 'content-encoding': 'gzip' }, status: 400, says: /not valid JSON/ },
  { name: 'an unknown content type', body: F6, headers: { 'content-type': 'application/x-whatever' }, status: 200 },
  { name: 'a form content type (curl -d)', body: F6, headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 200 },
  { name: 'GET on /', body: '', method: 'GET', status: 400, says: /Please send with post http method/ },
  { name: 'PUT on /', body: F6, method: 'PUT', status: 400, says: /Please send with post http method/ },
  { name: 'DELETE on an unknown path', body: '', method: 'DELETE', status: 400, says: /Please send with post http method/ },
  { name: 'POST on an unknown path ingests (falcosidekick)', body: F6, status: 200 },
];

/** Raw HTTP that fetch cannot send; each gets an answer (or a close), and the router keeps serving. */
const raw: Array<{ name: string; request: string | Buffer; answer: RegExp }> = [
  { name: 'not HTTP at all', request: 'HELLO\r\n\r\n', answer: /^HTTP\/1\.1 400/ },
  { name: 'a header line of 100 KB', request: `POST / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`, answer: /^HTTP\/1\.1 431/ },
  { name: '3,000 headers', request: `POST / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`, answer: /^HTTP\/1\.1 431/ },
  { name: 'a bad chunked body', request: 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', answer: /^HTTP\/1\.1 400/ },
  { name: 'both Content-Length and Transfer-Encoding', request: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', answer: /^HTTP\/1\.1 400/ },
  { name: 'a negative Content-Length', request: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', answer: /^HTTP\/1\.1 400/ },
  { name: 'a NUL in the request line', request: 'POST /\u0000 HTTP/1.1\r\nHost: x\r\n\r\n', answer: /^HTTP\/1\.1 400/ },
];

function sendRaw(url: string, request: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(port), hostname, () => s.write(request));
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => resolve(got));
    s.on('close', () => resolve(got));
    setTimeout(() => s.destroy(), 5000);
  });
}

test('the bad-input corpus: a clear answer for each, no 500, no error line, and the router keeps serving', { timeout: 120_000 }, async () => {
  const path = join(tempDir(), 'events.ndjson');
  const r = await startTestRouter(`bodylimit: ${BODY_LIMIT}\noutputs: [{ name: f, type: file, path: "${path}" }]\n`);
  const stored = () => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);
  let good = 0;
  let accepted = 0;
  const wrong: string[] = [];
  const stillServing = async (after: string) => {
    assert.equal((await fetch(`${r.url}/healthz`)).status, 200, `/healthz after "${after}"`);
    assert.equal((await r.post(falcoEvent(100_000 + good++))).status, 200, `a good alert after "${after}"`);
    accepted++;
  };
  try {
    for (const row of rows) {
      await waitFor(() => stored().length === accepted, 5000, 'what was accepted so far stored');
      const before = accepted;
      const res = await fetch(`${r.url}${row.name.includes('unknown path') ? '/some/where' : '/'}`, {
        method: row.method ?? 'POST',
        body: row.method === 'GET' ? undefined : typeof row.body === 'string' ? row.body : new Uint8Array(row.body),
        headers: { 'content-type': 'application/json', ...row.headers },
      });
      const text = await res.text();
      if (res.status === 200) accepted++;
      if (res.status !== row.status || (row.says && !row.says.test(text))) wrong.push(`${row.name}: answered ${res.status} ${text.slice(0, 200)}`);
      else if (row.status === 200 && row.stored) {
        await waitFor(() => stored().length > before, 5000, `${row.name} stored`);
        if (!row.stored.test(stored()[before])) wrong.push(`${row.name}: stored ${stored()[before].slice(0, 300)}`);
      }
      await stillServing(row.name);
    }
    for (const c of raw) {
      const answer = await sendRaw(r.url, c.request);
      if (!c.answer.test(answer)) wrong.push(`${c.name}: answered ${answer.slice(0, 100)}`);
      await stillServing(c.name);
    }
    assert.deepEqual(wrong, [], 'every row answered as expected');
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype polluted');
    assert.deepEqual(r.logs.filter((l) => /"level":50/.test(l)), [], 'no error line');
    assert.ok(rows.length + raw.length >= 90, `${rows.length + raw.length} kinds of bad input`);
  } finally {
    await r.stop();
  }
});
