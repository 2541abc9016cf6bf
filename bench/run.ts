/**
 * `npm run bench`: the same measurements every time, on loopback only, bounded in count and time.
 *   1. baseline: bare fastify, the machine's ingest ceiling
 *   2. ingest: the router with the memory and the Redis driver, one file output; and with 20 more
 *      outputs with matchers and a global exclude list (routing's cost)
 *   3. end to end: five outputs against local sinks, Redis driver (max rate, then a fixed 1,000/s)
 *   4. backlog: 200,000 events while the only output is down, then drained
 *   5. memory: peak RSS of the router in each scenario
 * Writes bench/results/latest.json and latest.md, prints the table.
 * BENCH_SCALE=0.1 shortens every scenario (for a quick look; results are not comparable).
 * BENCH_ONLY=e2e,backlog runs only those scenarios (baseline, ingest, e2e, backlog).
 * BENCH_ROUNDS=3: interleaved rounds of baseline and ingest runs (the table shows the median).
 * BENCH_PROFILE=<dir> writes a V8 CPU profile of each router run there (node --cpu-prof).
 * The router runs as the container image runs it: compiled to dist/ (built first).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, totalmem, hostname } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { benchEvent } from './events.ts';
import { freePort } from '../test/helpers/ports.ts';

const ROOT = join(import.meta.dirname, '..');
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const DURATION = Math.max(2, Math.round(10 * SCALE));
const CONNECTIONS = 50;
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const BACKLOG = Math.round(200_000 * SCALE);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
const runs = (scenario: string) => !ONLY || ONLY.has(scenario);
const PROFILE = process.env.BENCH_PROFILE;
const work = mkdtempSync(join(tmpdir(), 'router-bench-'));

const procs = new Set<ChildProcess>();
process.on('exit', () => procs.forEach((p) => p.kill('SIGKILL')));

function start(cmd: string, args: string[], env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.on('exit', () => procs.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (/ready\n|listening on|Ready to accept connections/.test(out)) {
        clearInterval(timer);
        resolve(child);
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`${cmd} ${args.join(' ')} exited: ${out}`));
      }
    }, 20);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
  child.kill('SIGKILL');
}

/** CPU seconds (user + system) a process has used so far; the bench process's own when pid is omitted. */
function cpuSec(pid?: number): number {
  if (pid === undefined) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU µs per event of each process over a phase. */
function cpuMeter(pids: Record<string, number | undefined>) {
  const start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSec(pid)]));
  return (events: number) => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, Math.round(((cpuSec(pid) - start[k]) * 1e6) / Math.max(1, events))]));
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples RSS every 200 ms until stopped; returns peak and samples. */
function sampleRss(pid: number) {
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(rssMb(pid)), 200);
  return {
    stop() {
      clearInterval(timer);
      samples.push(rssMb(pid));
      return { peak: Math.max(...samples), samples };
    },
  };
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Ack time (epoch ms, fractional) per marker. */
  acks: Map<number, number>;
}

let nextMarker = 0;

/** Posts realistic events; each request carries a new marker n. */
async function load(url: string, opts: { duration?: number; amount?: number; rate?: number }): Promise<Load> {
  const acks = new Map<number, number>();
  const result = await autocannon({
    url,
    connections: opts.rate ? 20 : CONNECTIONS,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration }),
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: [
      {
        setupRequest: (req: Record<string, unknown>, ctx: Record<string, unknown>) => {
          const n = nextMarker++;
          ctx.n = n;
          return { ...req, body: benchEvent(n) };
        },
        onResponse: (status: number, _body: string, ctx: Record<string, unknown>) => {
          if (status === 200) acks.set(ctx.n as number, performance.timeOrigin + performance.now());
        },
      },
    ],
  } as unknown as autocannon.Options);
  return {
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    acks,
  };
}

async function warmUp(url: string): Promise<void> {
  // Warm-up events carry no marker (n=-1), so they do not count as deliveries.
  await autocannon({ url, connections: 10, duration: 1, method: 'POST', body: benchEvent(-1), headers: { 'content-type': 'application/json' } });
}

async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = await start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work, '--loglevel', 'notice']);
  return { url: `redis://127.0.0.1:${port}`, child };
}

async function startRouter(name: string, yaml: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, `listenaddress: 127.0.0.1\nlistenport: ${port}\nlog: { level: warn }\n${yaml}`);
  const profile = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE, name)}`] : [];
  const child = await start(process.execPath, [...profile, 'dist/src/main.js', '-c', file], {
    LOG_LEVEL: 'info',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function sinkStats(sinkUrl: string): Promise<Record<string, { deliveries: number; unique: number }>> {
  return (await fetch(`${sinkUrl}/stats`)).json() as Promise<Record<string, { deliveries: number; unique: number }>>;
}

async function waitDelivered(sinkUrl: string, outputs: string[], expected: number, timeoutMs: number): Promise<{ ok: boolean; at: number }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const stats = await sinkStats(sinkUrl);
    if (outputs.every((o) => (stats[o]?.unique ?? 0) >= expected)) return { ok: true, at: performance.timeOrigin + performance.now() };
    if (Date.now() > end) return { ok: false, at: performance.timeOrigin + performance.now() };
    await new Promise((r) => setTimeout(r, 50));
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function main() {
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
  const results: Record<string, unknown> = {};
  const sinkPort = await freePort();
  const sinkUrl = `http://127.0.0.1:${sinkPort}`;
  const sinks = await start(process.execPath, ['--import', 'tsx', 'bench/sinks.ts', String(sinkPort)]);

  // 1–2. Baseline and ingest (one file output, memory and Redis drivers), interleaved in ROUNDS
  // rounds: this machine's speed drifts between runs, so each ratio compares runs of one round,
  // and the table shows the median round.
  if (runs('baseline') || runs('ingest')) {
    const basePort = await freePort();
    const baseline = await start(process.execPath, ['bench/baseline-server.mjs', String(basePort)]);
    const targets: Array<{ key: string; url: string; pid: number; redisPid?: number; stop: () => Promise<void> }> = [
      { key: 'baseline', url: `http://127.0.0.1:${basePort}/`, pid: baseline.pid!, stop: () => stop(baseline) },
    ];
    for (const driver of runs('ingest') ? (['memory', 'redis'] as const) : []) {
      const redis = driver === 'redis' ? await startRedis() : undefined;
      const queue = driver === 'redis' ? `queue: { driver: redis, redis: { url: "${redis!.url}", prefix: ingest } }` : 'queue: { driver: memory, maxevents: 10000000 }';
      const router = await startRouter(`ingest-${driver}`, `${queue}\noutputs:\n  - { name: file, type: file, path: "${join(work, `ingest-${driver}.ndjson`)}", maxsize: 1GiB }\n`);
      targets.push({
        key: `ingest_${driver}`,
        url: `${router.url}/`,
        pid: router.child.pid!,
        redisPid: redis?.child.pid,
        stop: async () => {
          await stop(router.child);
          if (redis) await stop(redis.child);
        },
      });
    }
    if (runs('ingest')) {
      // Routing cost: 20 more instances with 3 matchers each and a global exclude list of 10
      // entries, none of which match the bench's alerts, so the work besides routing is the same as
      // ingest_memory's (one file output).
      const instances = Array.from({ length: 20 }, (_, i) =>
        `  - { name: team-${i}, type: webhook, address: "${sinkUrl}/webhook", match: ['k8s.ns.name=~"team-${i}-.*"', 'priority!="Debug"', 'rule!~"Test.*"'] }`,
      ).join('\n');
      const excludes = Array.from({ length: 10 }, (_, i) => `  - { matchers: ['k8s.ns.name=~"external-(dns|secrets)-${i}"', 'rule="Contact K8S API Server From Container"'] }`).join('\n');
      const router = await startRouter(
        'ingest-routing',
        `queue: { driver: memory, maxevents: 10000000 }\nexclude:\n${excludes}\noutputs:\n  - { name: file, type: file, path: "${join(work, 'ingest-routing.ndjson')}", maxsize: 1GiB }\n${instances}\n`,
      );
      targets.push({ key: 'ingest_routing', url: `${router.url}/`, pid: router.child.pid!, stop: () => stop(router.child) });
    }
    for (const t of targets) await warmUp(t.url);
    const rounds: Array<Record<string, Record<string, unknown>>> = [];
    for (let n = 0; n < ROUNDS; n++) {
      const r: Record<string, Record<string, unknown>> = {};
      for (const t of targets) {
        const rss = sampleRss(t.pid);
        const pids: Record<string, number | undefined> = t.key === 'baseline' ? { server: t.pid } : { router: t.pid, ...(t.redisPid ? { redis: t.redisPid } : {}) };
        const cpu = cpuMeter({ ...pids, loadGenerator: undefined });
        const l = await load(t.url, { duration: DURATION });
        r[t.key] = { rps: l.rps, p50: l.p50, p99: l.p99, non2xx: l.non2xx, errors: l.errors, peakRssMb: round(rss.stop().peak), cpuUsPerRequest: cpu(l.requests) };
      }
      for (const t of targets.slice(1)) {
        r[t.key].ratio = round((r[t.key].rps as number) / (r.baseline.rps as number), 2);
        r[t.key].p99Ratio = round((r[t.key].p99 as number) / (r.baseline.p99 as number), 2);
      }
      // Routing's cost against the same router without matchers, in the same round.
      if (r.ingest_routing && r.ingest_memory) r.ingest_routing.vsMemory = round((r.ingest_routing.rps as number) / (r.ingest_memory.rps as number), 3);
      console.log(`round ${n + 1}`, JSON.stringify(r));
      rounds.push(r);
    }
    for (const t of targets) {
      // The median round by this scenario's ratio (the baseline's by its rate).
      const by = (x: Record<string, Record<string, unknown>>) => (t.key === 'baseline' ? (x.baseline.rps as number) : (x[t.key].ratio as number));
      const sorted = [...rounds].sort((x, y) => by(x) - by(y));
      results[t.key] = { ...sorted[Math.floor(sorted.length / 2)][t.key], rounds: rounds.map((x) => x[t.key]) };
      await t.stop();
    }
  }

  // 3. End to end, five outputs, Redis driver
  if (runs('e2e')) {
    const redis = await startRedis();
    const outputs = ['file', 'webhook', 'slack', 'cloudwatch', 'sns'];
    const aws = `region: us-east-1, accesskeyid: bench, secretaccesskey: bench, checkidentity: false`;
    const router = await startRouter(
      'e2e',
      `queue: { driver: redis, redis: { url: "${redis.url}", prefix: e2e } }
outputs:
  - { name: file, type: file, path: "${join(work, 'e2e.ndjson')}", maxsize: 1GiB }
  - { name: webhook, type: webhook, address: "${sinkUrl}/webhook", delivery: { concurrency: 16 } }
  - { name: slack, type: slack, webhookurl: "${sinkUrl}/slack", delivery: { ratelimit: 0, summarizeabove: 0, concurrency: 16 } }
  - { name: cloudwatch, type: awscloudwatchlogs, loggroup: bench, logstream: bench, endpoint: "${sinkUrl}/cloudwatch", ${aws} }
  - { name: sns, type: awssns, topicarn: "arn:aws:sns:us-east-1:123456789012:bench", endpoint: "${sinkUrl}/sns", ${aws}, delivery: { concurrency: 16 } }
`,
    );
    // The file sink is the router's own file: count its lines through the same marker scan.
    const fileCount = () => {
      try {
        return (readFileSync(join(work, 'e2e.ndjson'), 'utf8').match(/n=\d+\)/g) ?? []).length;
      } catch {
        return 0;
      }
    };
    const remote = outputs.filter((o) => o !== 'file');
    const rss = sampleRss(router.child.pid!);

    const before = await sinkStats(sinkUrl);
    const fileBefore = fileCount();
    const t0 = performance.timeOrigin + performance.now();
    const cpu = cpuMeter({ router: router.child.pid, sinks: sinks.pid, redis: redis.child.pid, loadGenerator: undefined });
    const max = await load(`${router.url}/`, { duration: DURATION });
    const acked = max.acks.size;
    const got = await waitDelivered(sinkUrl, remote, acked + Math.max(0, ...remote.map((o) => before[o]?.unique ?? 0)), 120_000);
    const fileDone = fileCount() - fileBefore;
    const deliveredRate = Math.round(acked / ((got.at - t0) / 1000));
    // CPU per event of every process until all five have it: what 5,000 events/s would need.
    const cpuUsPerEvent = cpu(acked);
    results.e2e_max = { offeredRps: max.rps, acked, allDelivered: got.ok && fileDone >= acked, deliveredPerSecToAllFive: deliveredRate, cpuUsPerEvent };
    console.log('e2e max', results.e2e_max);

    const fixed = await load(`${router.url}/`, { duration: DURATION, rate: 1000 });
    const after = await waitDelivered(sinkUrl, remote, (await sinkStats(sinkUrl)).webhook.unique + 0, 1000);
    void after;
    await waitDelivered(sinkUrl, remote, acked + fixed.acks.size, 60_000);
    const latencies: number[] = [];
    const perOutput: Record<string, { p50: number; p99: number }> = {};
    for (const o of remote) {
      const times = new Map((await (await fetch(`${sinkUrl}/times/${o}`)).json()) as Array<[number, number]>);
      const l: number[] = [];
      for (const [n, ack] of fixed.acks) {
        const t = times.get(n);
        if (t !== undefined) l.push(Math.max(0, t - ack));
      }
      l.sort((a, b) => a - b);
      perOutput[o] = { p50: round(percentile(l, 50)), p99: round(percentile(l, 99)) };
      latencies.push(...l);
    }
    latencies.sort((a, b) => a - b);
    results.e2e_fixed = {
      offeredRps: 1000,
      acked: fixed.acks.size,
      ackP50: fixed.p50,
      ackP99: fixed.p99,
      deliveryP50Ms: round(percentile(latencies, 50)),
      deliveryP99Ms: round(percentile(latencies, 99)),
      perOutput,
      peakRssMb: round(rss.stop().peak),
    };
    console.log('e2e fixed', results.e2e_fixed);
    await stop(router.child);
    await stop(redis.child);
  }

  // 4. Backlog: steady state first (the same load with the output up), then the only output
  // down while BACKLOG events arrive, then back. RSS is compared with the steady state's peak.
  if (runs('backlog')) {
    const redis = await startRedis();
    const router = await startRouter(
      'backlog',
      `queue: { driver: redis, redis: { url: "${redis.url}", prefix: backlog } }
outputs:
  - { name: backlog, type: webhook, address: "${sinkUrl}/backlog", delivery: { concurrency: 16, attempts: 1000, initialdelay: 100ms, maxdelay: 1s } }
`,
    );
    await warmUp(`${router.url}/`);
    const steadyRss = sampleRss(router.child.pid!);
    const normal = await load(`${router.url}/`, { amount: Math.round(BACKLOG / 4) });
    const normalDone = await waitDelivered(sinkUrl, ['backlog'], normal.acks.size, 120_000);
    const steady = steadyRss.stop().peak;
    await fetch(`${sinkUrl}/down/backlog`, { method: 'POST' });
    const rss = sampleRss(router.child.pid!);
    const fill = await load(`${router.url}/`, { amount: BACKLOG });
    const duringBacklog = rssMb(router.child.pid!);
    await fetch(`${sinkUrl}/up/backlog`, { method: 'POST' });
    const t0 = performance.timeOrigin + performance.now();
    const got = await waitDelivered(sinkUrl, ['backlog'], normal.acks.size + fill.acks.size, 300_000);
    const drainSec = (got.at - t0) / 1000;
    const stats = (await sinkStats(sinkUrl)).backlog;
    const peak = rss.stop().peak;
    const times = new Map((await (await fetch(`${sinkUrl}/times/backlog`)).json()) as Array<[number, number]>);
    const missing = [...normal.acks.keys(), ...fill.acks.keys()].filter((n) => !times.has(n)).length;
    if (!normalDone.ok) console.warn('backlog: the steady-state events were not all delivered in time');
    results.backlog = {
      events: BACKLOG,
      acked: fill.acks.size,
      fillRps: fill.rps,
      steadyEvents: normal.acks.size,
      steadyRssMb: round(steady),
      rssDuringBacklogMb: round(duringBacklog),
      peakRssMb: round(peak),
      peakVsSteady: round(peak / steady, 2),
      drainPerSec: Math.round(fill.acks.size / drainSec),
      delivered: stats?.unique ?? 0,
      missing,
      duplicates: (stats?.deliveries ?? 0) - (stats?.unique ?? 0),
    };
    console.log('backlog', results.backlog);
    await stop(router.child);
    await stop(redis.child);
  }
  await stop(sinks);

  const meta = {
    date: new Date().toISOString(),
    machine: `${hostname()}: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    redis: String(await new Promise((r) => {
      const p = spawn('redis-server', ['--version']);
      let s = '';
      p.stdout.on('data', (d: Buffer) => (s += d));
      p.on('exit', () => r(/v=(\S+)/.exec(s)?.[1] ?? '?'));
    })),
    scale: SCALE,
    durationSec: DURATION,
    connections: CONNECTIONS,
    rounds: ROUNDS,
  };
  const all = { meta, results };
  if (ONLY) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), JSON.stringify(all, null, 2) + '\n');
  const md = table(all);
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.md'), md);
  console.log('\n' + md);
}

function e2eCpu(c: Record<string, number>): string {
  const sum = c.router + c.sinks + c.redis + c.loadGenerator;
  return `${c.router}; ${c.sinks}; ${c.redis}; ${c.loadGenerator} (${sum} → ${Math.round(2e6 / sum)}/s)`;
}

function table({ meta, results: r }: { meta: Record<string, unknown>; results: Record<string, any> }): string {
  const lines = [
    `Benchmark ${meta.date} — ${meta.machine}; Node ${meta.node}, Redis ${meta.redis}; ${meta.connections} connections, ${meta.durationSec} s per run, ingest: median of ${meta.rounds} interleaved rounds${meta.scale !== 1 ? `, scale ${meta.scale}` : ''}`,
    '',
    '| scenario | figure | value | target |',
    '|---|---|---|---|',
    `| baseline (bare fastify) | req/s, p50 / p99 ms | ${r.baseline.rps}, ${r.baseline.p50} / ${r.baseline.p99} | — |`,
    `| ingest, memory driver | req/s (× baseline), p99 ms | ${r.ingest_memory.rps} (${r.ingest_memory.ratio}×), ${r.ingest_memory.p99} | ≥ 0.9× |`,
    ...(r.ingest_routing
      ? [
          `| ingest, memory, 20 outputs × 3 matchers + 10 excludes | req/s (× one output without matchers, same round), p99 ms | ${r.ingest_routing.rps} (${r.ingest_routing.vsMemory}×), ${r.ingest_routing.p99} | ≥ 0.95× |`,
        ]
      : []),
    `| ingest, Redis driver | req/s (× baseline), p99 ms (× baseline p99) | ${r.ingest_redis.rps} (${r.ingest_redis.ratio}×), ${r.ingest_redis.p99} (${r.ingest_redis.p99Ratio}×) | ≥ 0.8×, p99 ≤ 2× |`,
    `| end to end, 5 outputs, Redis | events/s delivered to all five | ${r.e2e_max.deliveredPerSecToAllFive} (all delivered: ${r.e2e_max.allDelivered}) | ≥ 5,000 |`,
    `| end to end at 1,000/s | ack → delivery p50 / p99 ms | ${r.e2e_fixed.deliveryP50Ms} / ${r.e2e_fixed.deliveryP99Ms} | p99 ≤ 250 |`,
    `| backlog ${r.backlog.events} events, output down | RSS peak at steady state → peak with backlog and drain, MB | ${r.backlog.steadyRssMb} → ${r.backlog.peakRssMb} (${r.backlog.peakVsSteady}×) | < 300, ≤ 1.2× |`,
    `| backlog drain | events/s; missing; duplicates | ${r.backlog.drainPerSec}; ${r.backlog.missing}; ${r.backlog.duplicates} | 0 missing |`,
    `| peak RSS | baseline / memory / Redis / e2e MB | ${r.baseline.peakRssMb} / ${r.ingest_memory.peakRssMb} / ${r.ingest_redis.peakRssMb} / ${r.e2e_fixed.peakRssMb} | — |`,
    `| CPU per request, ingest | bare fastify; router, memory; router + Redis server, Redis; load generator (baseline run), µs | ${r.baseline.cpuUsPerRequest.server}; ${r.ingest_memory.cpuUsPerRequest.router}; ${r.ingest_redis.cpuUsPerRequest.router} + ${r.ingest_redis.cpuUsPerRequest.redis}; ${r.baseline.cpuUsPerRequest.loadGenerator} | — |`,
    `| CPU per event, end to end | router; sinks; Redis; load generator, µs (sum → events/s 2 cores allow) | ${e2eCpu(r.e2e_max.cpuUsPerEvent)} | — |`,
  ];
  return lines.join('\n') + '\n';
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
