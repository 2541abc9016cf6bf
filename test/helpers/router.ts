/** Starts a router in this process from a YAML config text, on a free port, with logs kept in memory. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.ts';
import { outputTypes, defaultOutput } from '../../outputs/index.ts';
import { createLogger } from '../../src/log.ts';
import { startRouter, type Router } from '../../src/app.ts';
import { freePort } from './ports.ts';

export interface TestRouter extends Router {
  logs: string[];
  /** The current value of a metric series (0 when it has none yet), e.g. metric('falco_router_output_events_total', { output: 'cwl', stat: 'truncated' }). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  post(body: string, init?: { path?: string; headers?: Record<string, string> }): Promise<{ status: number; body: string }>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'router-test-'));
}

export async function startTestRouter(yaml: string, env: Record<string, string> = {}): Promise<TestRouter> {
  const dir = tempDir();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  const port = await freePort();
  // A short grace period keeps tests whose outputs stay down from waiting the default 10 s on stop.
  const cfg = loadConfig({ file, env: { LISTENADDRESS: '127.0.0.1', LISTENPORT: String(port), SHUTDOWN_GRACEPERIOD: '1s', ...env }, types: outputTypes, defaultOutput });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const router = await startRouter(cfg, outputTypes, createLogger('debug', sink));
  // Onto the router itself, not a spread copy: a copy would freeze `workers` (a getter) at its start value.
  return Object.assign(router, {
    logs,
    async metric(name: string, labels: Record<string, string> = {}) {
      const m = router.metrics.registry.getSingleMetric(name);
      if (!m) throw new Error(`no metric ${name}`);
      const { values } = await m.get();
      return values.filter((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x)).reduce((n, v) => n + v.value, 0);
    },
    async post(body: string, init: { path?: string; headers?: Record<string, string> } = {}) {
      const res = await fetch(`${router.url}${init.path ?? '/'}`, { method: 'POST', body, headers: init.headers });
      return { status: res.status, body: await res.text() };
    },
  });
}
