/**
 * Running it in production: reload without losing work, mutual TLS and tokens on ingest,
 * metrics that move.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startTestRouter, tempDir } from '../helpers/router.ts';
import { startHttpSink } from '../fakes/http-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { loadConfig } from '../../src/config/load.ts';
import { outputTypes } from '../../outputs/index.ts';
import { falcoEvent, markerOf, F6 } from '../fixtures/events.ts';

let certs: string;
const pem = (f: string) => readFileSync(join(certs, f));

/** A CA, a server certificate for 127.0.0.1, a client certificate, and one from another CA. */
before(() => {
  certs = tempDir();
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: certs, stdio: 'ignore' });
  writeFileSync(join(certs, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const ca of ['ca', 'other-ca']) ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=${ca}`);
  const leaf = (name: string, ca: string, ext: boolean) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...(ext ? ['-extfile', 'san.ext'] : []));
  };
  leaf('server', 'ca', true);
  leaf('client', 'ca', false);
  leaf('stranger', 'other-ca', false);
});

function tlsYaml(file: string) {
  return `tlsserver:
  deploy: true
  mutualtls: true
  certfile: ${join(certs, 'server.crt')}
  keyfile: ${join(certs, 'server.key')}
  cacertfile: ${join(certs, 'ca.crt')}
  notlspaths: [/healthz, /metrics]
outputs:
  - { name: file, type: file, path: ${file} }
`;
}

async function postTls(url: string, client?: string): Promise<number> {
  const connect: Record<string, unknown> = { ca: pem('ca.crt') };
  if (client) Object.assign(connect, { cert: pem(`${client}.crt`), key: pem(`${client}.key`) });
  const agent = new Agent({ connect });
  try {
    const res = await request(`${url}/`, { method: 'POST', body: F6, dispatcher: agent });
    await res.body.text();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

test('mutual TLS ingest accepts a client with a valid certificate and refuses others; probes stay on plain HTTP', async () => {
  const file = join(tempDir(), 'events.ndjson');
  const r = await startTestRouter(tlsYaml(file), { TLSSERVER_NOTLSPORT: String(await import('../helpers/ports.ts').then((m) => m.freePort())) });
  try {
    const url = r.url.replace('http://', 'https://');
    assert.equal(await postTls(url, 'client'), 200);
    await assert.rejects(postTls(url), 'no client certificate');
    await assert.rejects(postTls(url, 'stranger'), 'a certificate from another CA');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 1, 5000, 'exactly the one accepted event');
    assert.ok(r.plainUrl, 'a plain-HTTP server for notlspaths');
    assert.equal(await (await fetch(`${r.plainUrl}/healthz`)).text(), '{"status": "ok"}');
    assert.equal((await fetch(`${r.plainUrl}/`, { method: 'POST', body: F6 })).status, 404, 'ingest is not on the plain port');
  } finally {
    await r.stop();
  }
});

test('a bearer token guards ingest and the dead-letter API, never the probes; /test can be disabled', async () => {
  const file = join(tempDir(), 'events.ndjson');
  const tokenFile = join(tempDir(), 'token');
  writeFileSync(tokenFile, 's3cret-token\n');
  const r = await startTestRouter(`auth: { tokenfile: ${tokenFile} }\ntestendpoint: disabled\noutputs:\n  - { name: file, type: file, path: ${file} }\n`);
  try {
    const denied = await r.post(F6);
    assert.equal(denied.status, 401);
    assert.match(denied.body, /Authorization: Bearer/);
    assert.equal((await r.post(F6, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await r.post(F6, { headers: { authorization: 'Bearer s3cret-token' } })).status, 200);
    assert.equal((await fetch(`${r.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${r.url}/ping`)).status, 200);
    assert.equal((await fetch(`${r.url}/api/v1/deadletters/file`)).status, 401);
    assert.equal((await fetch(`${r.url}/api/v1/deadletters/file`, { headers: { authorization: 'Bearer s3cret-token' } })).status, 200);
    assert.equal((await r.post('', { path: '/test' })).status, 404);
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 1, 5000, 'only the authorised event stored');
    assert.ok(!r.logs.some((l) => l.includes('s3cret-token')), 'the token is never logged');
  } finally {
    await r.stop();
  }
});

test('a reload swaps an output’s address without losing what was queued or in flight; a bad config is refused', async () => {
  const old = await startHttpSink([{ status: 503 }]);
  const fresh = await startHttpSink();
  const dir = tempDir();
  const yaml = (address: string, extra = '') =>
    `outputs:\n  - { name: hook, type: webhook, address: "${address}", delivery: { attempts: 1000, initialdelay: 50ms, maxdelay: 100ms } }\n${extra}`;
  const r = await startTestRouter(yaml(old.url));
  try {
    for (let i = 0; i < 30; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
    await waitFor(() => old.requests.length > 0, 5000, 'the old address being tried');

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, yaml('not a url'));
    assert.throws(() => loadConfig({ file: bad, env: {}, types: outputTypes }), /outputs\[0\]\.address: is not an http\(s\) URL/);

    const good = join(dir, 'good.yaml');
    writeFileSync(good, yaml(fresh.url, `  - { name: added, type: webhook, address: "${fresh.url}" }\n`));
    const result = await r.reload(loadConfig({ file: good, env: { LISTENPORT: '1', LISTENADDRESS: '127.0.0.1' }, types: outputTypes }));
    assert.deepEqual(result.changed, ['hook']);
    assert.deepEqual(result.added, ['added']);
    assert.ok(result.restartNeeded.includes('listenport'));

    for (let i = 30; i < 40; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
    const atNew = () => new Set(fresh.delivered().map(markerOf));
    await waitFor(() => atNew().size === 40, 10_000, 'all 40 events, queued before and after the reload, at the new address');
    // The sink sees a request before the router has read the answer: wait for the counters.
    const scrape = async () => (await fetch(`${r.url}/metrics`)).text();
    const expected = [
      /falco_router_delivery_attempts_total\{output="hook",type="webhook",outcome="serverError"\} [1-9]/,
      /falco_router_events_delivered_total\{output="hook",type="webhook"\} 40/,
      /falcosecurity_falcosidekick_outputs_total\{destination="added",status="ok"\} 10/,
      /falco_router_queue_depth\{output="hook",type="webhook"\} 0/,
    ];
    await waitFor(async () => {
      const text = await scrape();
      return expected.every((re) => re.test(text));
    }, 10_000, 'the delivery metrics');
  } finally {
    await r.stop();
    await old.close();
    await fresh.close();
  }
});
