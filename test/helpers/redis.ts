/** A private redis-server per test file, so tests can stop and restart it and never collide. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { waitFor } from './wait.ts';
import { Redis } from 'ioredis';

export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL when hard); start() brings it back on the same port. */
  stop(hard?: boolean): Promise<void>;
  start(): Promise<void>;
}

/** `aof`: keep an append-only file, fsynced on every write (`always`) or once a second. */
export async function startRedis(opts: { aof?: 'always' | 'everysec' } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'router-redis-'));
  let proc: ChildProcess | undefined;
  const start = async () => {
    const aof = opts.aof ? ['--appendonly', 'yes', '--appendfsync', opts.aof] : ['--appendonly', 'no'];
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...aof, '--dir', dir], { stdio: 'ignore' });
    await waitFor(async () => {
      const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => {});
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        c.disconnect();
      }
    }, 10_000);
  };
  const stop = async (hard = false) => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  await start();
  process.once('exit', () => proc?.kill('SIGKILL'));
  return { url: `redis://127.0.0.1:${port}`, port, stop, start };
}
