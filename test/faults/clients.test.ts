/**
 * Slow, idle and too many clients: none of them may take ingest, /healthz or /ready away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestRouter } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { falcoEvent } from '../fixtures/events.ts';

function open(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    // Read what comes, so that the server closing the connection is seen.
    s.resume();
    s.on('error', reject);
  });
}

const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

test('a client sending its headers a byte at a time is disconnected after ingest.headerstimeout', async () => {
  const r = await startTestRouter('ingest: { headerstimeout: 1s }\n');
  try {
    const s = await open(r.url);
    s.on('error', () => {});
    s.write('POST / HTTP/1.1\r\n');
    const drip = setInterval(() => s.writable && s.write('a'), 100);
    const started = Date.now();
    await Promise.race([closed(s), new Promise((_, reject) => setTimeout(() => reject(new Error('still connected after 10 s')), 10_000))]);
    clearInterval(drip);
    assert.ok(Date.now() - started >= 900, 'not before the deadline');
    assert.equal((await r.post(falcoEvent(1))).status, 200, 'ingest still works');
  } finally {
    await r.stop();
  }
});

test('at ingest.maxconnections, idle connections make room: /healthz, /ready and alerts still get in, and the bound is logged', async () => {
  const r = await startTestRouter('ingest: { maxconnections: 20 }\n');
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 60; i++) {
      const s = await open(r.url);
      s.on('error', () => {});
      sockets.push(s);
    }
    for (let i = 0; i < 5; i++) {
      assert.equal((await fetch(`${r.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${r.url}/ready`)).status, 200);
      assert.equal((await r.post(falcoEvent(i))).status, 200);
    }
    await waitFor(() => sockets.filter((s) => s.destroyed).length >= 40, 5000, 'idle connections closed to stay within 20');
    assert.ok(r.logs.some((l) => l.includes('ingest connections at the bound (20)')), 'the bound is logged');
  } finally {
    for (const s of sockets) s.destroy();
    await r.stop();
  }
});

test('an idle keep-alive connection is closed after ingest.idletimeout', async () => {
  const r = await startTestRouter('ingest: { idletimeout: 500ms }\n');
  try {
    const s = await open(r.url);
    s.on('error', () => {});
    s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    await Promise.race([closed(s), new Promise((_, reject) => setTimeout(() => reject(new Error('idle connection kept for 10 s')), 10_000))]);
  } finally {
    await r.stop();
  }
});

test('a client that hangs up mid-request is not logged as the router’s error', async () => {
  const r = await startTestRouter('');
  try {
    const s = await open(r.url);
    s.on('error', () => {});
    s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"output":');
    await new Promise((res) => setTimeout(res, 100));
    s.destroy();
    await waitFor(() => r.logs.some((l) => l.includes('client closed the connection')), 5000, 'the hang-up seen');
    assert.deepEqual(r.logs.filter((l) => /"level":50/.test(l)), [], 'no error line');
    assert.equal((await r.post(falcoEvent(1))).status, 200);
  } finally {
    await r.stop();
  }
});

test('over TLS too, at ingest.maxconnections an idle connection makes room, never one with a request in flight', async () => {
  const { connect: tlsConnect } = await import('node:tls');
  const { makeCerts } = await import('../helpers/certs.ts');
  const certs = makeCerts();
  const r = await startTestRouter(`ingest: { maxconnections: 2 }\ntlsserver: { deploy: true, certfile: ${certs.path('server.crt')}, keyfile: ${certs.path('server.key')} }\n`);
  const { port } = new URL(r.url);
  const openTls = () =>
    new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false }, () => resolve(s));
      s.setEncoding('utf8');
      s.on('error', reject);
    });
  const body = falcoEvent(1);
  try {
    // Many short connections first: none of them may linger in the bookkeeping.
    const { request, Agent } = await import('undici');
    for (let i = 0; i < 50; i++) {
      const agent = new Agent({ connect: { rejectUnauthorized: false } });
      const res = await request(`${r.url}/healthz`, { dispatcher: agent });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      await agent.close();
    }
    const busy = await openTls();
    let busyAnswer = '';
    busy.on('data', (d) => (busyAnswer += d));
    busy.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`);
    await new Promise((res) => setTimeout(res, 100));
    const idle = await openTls();
    idle.on('error', () => {});
    const idleClosed = new Promise<void>((res) => idle.once('close', () => res()));
    idle.resume();
    // A third connection: the idle one must make room, not the one mid-request.
    const third = await openTls();
    third.on('error', () => {});
    await Promise.race([idleClosed, new Promise((_, rej) => setTimeout(() => rej(new Error('the idle connection was not closed')), 5000))]);
    busy.write(body.slice(10));
    await waitFor(() => busyAnswer.startsWith('HTTP/1.1 200'), 5000, 'the request in flight answered 200');
    busy.destroy();
    third.destroy();
  } finally {
    await r.stop();
  }
});
