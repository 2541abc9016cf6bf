/**
 * Wires a validated config into a running router: queue, output instances and their pipelines,
 * HTTP server(s); and swaps output instances on reload without losing what is queued or in flight.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RouterConfig, OutputInstance } from './config/load.ts';
import type { OutputType } from '../outputs/sdk/contract.ts';
import type { ClientTlsFiles } from '../outputs/sdk/http.ts';
import { MemoryQueue } from './queue/memory.ts';
import { RedisQueue } from './queue/redis.ts';
import type { QueueDriver } from './queue/types.ts';
import type { DeliveryWorker } from './pipeline/worker.ts';
import { createInstance, type InstanceContext } from './pipeline/instance.ts';
import { GroupCommit } from './ingest/group-commit.ts';
import { buildServer, ALL_ROUTES, type LiveSettings, type ServerOptions } from './ingest/server.ts';
import { Metrics } from './metrics.ts';
import { RoutingTable } from './routing/table.ts';
import { resolveMaxConnections } from './ingest/connections.ts';
import { MemorySilenceStore, type SilenceStore } from './routing/silences.ts';
import { RedisSilenceStore } from './routing/silences-redis.ts';

export interface Router {
  /** The main server (TLS when tlsserver.deploy). */
  server: FastifyInstance;
  queue: QueueDriver;
  readonly workers: readonly DeliveryWorker[];
  metrics: Metrics;
  /** Run-time silences (the API's store; ingest reads its cache). */
  silences: SilenceStore;
  /** Base URL of the main server; `plainUrl` for the plain-HTTP side of tlsserver.notlspaths. */
  url: string;
  plainUrl?: string;
  /** Applies a new validated config: outputs added, removed or changed; enrichment; token. */
  reload(cfg: RouterConfig): Promise<{ added: string[]; removed: string[]; changed: string[]; restartNeeded: string[] }>;
  /** Graceful stop: refuse new requests, then finish or hand back deliveries. */
  stop(): Promise<void>;
}

/** Settings that take effect only when the process starts. */
export const RESTART_KEYS = ['listenaddress', 'listenport', 'bodylimit', 'ingest', 'queue', 'silences', 'tlsserver'] as const;

export async function startRouter(initial: RouterConfig, types: readonly OutputType[], logger: Logger): Promise<Router> {
  let cfg = initial;
  const queue: QueueDriver =
    cfg.queue.driver === 'redis'
      ? await RedisQueue.connect({
          url: cfg.queue.redis.url,
          prefix: cfg.queue.redis.prefix,
          lockDuration: cfg.queue.redis.lockduration,
          stalledInterval: cfg.queue.redis.stalledinterval,
          depthCheckInterval: cfg.queue.redis.depthcheckinterval,
          logger,
        })
      : new MemoryQueue(cfg.queue.maxevents);

  const metrics = new Metrics();
  // Silences are kept where the queue is: in Redis for every replica, or in this process (and a file).
  const silenceOptions = { retentionMs: cfg.silences.retention, logger };
  const silences: SilenceStore =
    queue instanceof RedisQueue
      ? new RedisSilenceStore(queue.commands, cfg.queue.redis.prefix, silenceOptions)
      : new MemorySilenceStore({ ...silenceOptions, path: cfg.silences.path });
  // Before any alert is taken: one that a stored silence covers is never sent, after a restart too.
  await silences.start().catch(async (err: Error) => {
    await queue.close();
    throw err;
  });
  metrics.watchSilences(() => silences.states());
  const context = (c: RouterConfig): InstanceContext => ({ types, queue, logger, observer: metrics, debug: c.debug, tls: clientTls(c) });
  let workers = cfg.outputs.map((inst) => createInstance(inst, context(cfg)));
  for (const w of workers) w.start();

  // Routing reads the config, not the workers: a change to minimumpriority, match or exclude only
  // swaps this table (an alert already routed keeps its deliveries; nothing in flight is touched).
  const liveFrom = (c: RouterConfig): LiveSettings => {
    metrics.watchFiltered(c.outputs.map((o) => o.name));
    return {
      debug: c.debug,
      enrich: c,
      routing: new RoutingTable(c.outputs, c.exclude),
      ...readTokens(c),
      testEndpoint: c.testendpoint,
    };
  };
  let live = liveFrom(cfg);
  metrics.watchOutputs(queue, () => workers);

  const deps = {
    bodyLimit: cfg.bodylimit,
    limits: {
      headersTimeoutMs: cfg.ingest.headerstimeout,
      requestTimeoutMs: cfg.ingest.requesttimeout,
      idleTimeoutMs: cfg.ingest.idletimeout,
      maxConnections: resolveMaxConnections(cfg.ingest.maxconnections),
    },
    live: () => live,
    groupCommit: new GroupCommit(queue, cfg.queue.groupmaxevents),
    queue,
    silences,
    metrics,
    logger,
    readiness: async (detail: boolean) => {
      const outputs = await Promise.all(
        workers.map(async (w) => {
          const { lastError, setupError, ...state } = w.state;
          return {
            ...state,
            // Error texts (secrets already redacted) only to those who may read the dead letters.
            lastError: lastError && (detail ? lastError : { at: lastError.at, reason: lastError.reason }),
            setupError: setupError && (detail ? setupError : { at: setupError.at, attempts: setupError.attempts, retryAt: setupError.retryAt }),
            backlog: await queue.depth(w.instance.name).catch(() => null),
            deadLetters: await queue.deadLetterCount(w.instance.name).catch(() => null),
            // This process's counts (a replica's own), kept next to the metric: no registry read per probe.
            filtered: metrics.filteredCounts(w.instance.name),
          };
        }),
      );
      const ready = queue.ready();
      return { ready, body: { ready, queue: { driver: queue.kind, reachable: ready }, silences: { active: silences.states().active }, outputs } };
    },
  };

  const t = cfg.tlsserver;
  const host = cfg.listenaddress || '0.0.0.0';
  let server: FastifyInstance;
  let plain: FastifyInstance | undefined;
  if (t.deploy) {
    const https: ServerOptions['https'] = {
      key: readFileSync(t.keyfile),
      cert: readFileSync(t.certfile),
      ca: t.mutualtls ? readFileSync(t.cacertfile) : undefined,
      requestCert: t.mutualtls,
      rejectUnauthorized: t.mutualtls,
      minVersion: 'TLSv1.2',
    };
    const plainRoutes = ALL_ROUTES.filter((r) => t.notlspaths.includes(r));
    server = buildServer(deps, { https, routes: ALL_ROUTES.filter((r) => !plainRoutes.includes(r)) });
    if (plainRoutes.length > 0) plain = buildServer(deps, { routes: plainRoutes });
    else logger.warn('tlsserver.deploy is on with no tlsserver.notlspaths: every path, /healthz included, is served over TLS only');
  } else {
    if (t.mutualtls) logger.warn('tlsserver.mutualtls needs tlsserver.deploy: true; serving plain HTTP');
    server = buildServer(deps);
  }
  const address = await server.listen({ host, port: cfg.listenport });
  const plainAddress = plain ? await plain.listen({ host, port: t.notlsport }) : undefined;
  const where = (port: number) => `${cfg.listenaddress || 'all interfaces'} port ${port}`;
  logger.info(
    { outputs: cfg.outputs.map((o) => `${o.name} (${o.type})`), queue: queue.kind, tls: t.deploy, mutualtls: t.deploy && t.mutualtls },
    `listening on ${where(cfg.listenport)}${t.deploy ? ' (TLS)' : ''}${plain ? `, and plain HTTP on ${where(t.notlsport)} for ${t.notlspaths.join(', ')}` : ''}`,
  );

  const reload: Router['reload'] = async (next) => {
    const nextTokens = readTokens(next); // fails before anything changes when a token file is unreadable
    const restartNeeded = RESTART_KEYS.filter((k) => JSON.stringify(cfg[k]) !== JSON.stringify(next[k]));
    const before = new Map(workers.map((w) => [w.instance.name, w]));
    const wanted = new Map(next.outputs.map((o) => [o.name, o]));
    // `origin` (outputs[i]) only says where the instance was written: moving it in the list changes
    // nothing. Routing settings are read by the routing table, not the worker: changing them does
    // not restart the output.
    const comparable = ({ origin: _origin, minimumpriority: _min, match: _match, exclude: _exclude, ...rest }: OutputInstance) => JSON.stringify(rest);
    const removed = [...before.keys()].filter((n) => !wanted.has(n));
    const changed = [...wanted.keys()].filter((n) => before.has(n) && comparable(before.get(n)!.instance) !== comparable(wanted.get(n)!));
    const added = [...wanted.keys()].filter((n) => !before.has(n));
    const fresh = new Map([...changed, ...added].map((n) => [n, createInstance(wanted.get(n)!, context(next))]));
    // Stop the replaced and removed workers: sends in flight finish or go back to their queue,
    // which is keyed by output name, so the new worker picks them up.
    const retiring = [...removed, ...changed].map((n) => before.get(n)!);
    await Promise.all(retiring.map((w) => w.stop(next.shutdown.graceperiod, { drain: false })));
    await Promise.allSettled(retiring.map((w) => w.output.close?.()));
    workers = next.outputs.map((o) => fresh.get(o.name) ?? before.get(o.name)!);
    for (const w of fresh.values()) w.start();
    for (const name of removed) {
      const left = await queue.depth(name).catch(() => 0);
      if (left > 0) logger.warn({ output: name, events: left }, `output ${name} removed with ${left} events still queued; they are delivered if it comes back under the same name`);
    }
    cfg = next;
    live = { ...liveFrom(next), ...nextTokens };
    return { added, removed, changed, restartNeeded: [...restartNeeded] };
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const grace = cfg.shutdown.graceperiod;
      await Promise.all([server.close(), plain?.close()]);
      logger.info('ingest closed; stopping deliveries');
      await Promise.all(workers.map((w) => w.stop(grace, { drain: true })));
      logger.info('deliveries stopped');
      if (queue instanceof MemoryQueue) {
        for (const w of workers) {
          const left = await queue.depth(w.instance.name);
          if (left > 0) logger.error({ output: w.instance.name, events: left }, `stopped with ${left} events not delivered (memory queue is not durable)`);
          // Alerts held back by dedup or throttle are not in the depth: their summary is what is lost.
          const held = queue.heldBack(w.instance.name);
          if (held > 0) logger.error({ output: w.instance.name, heldBack: held }, `stopped with ${held} held-back alerts not summarised (memory queue is not durable)`);
        }
      }
      await Promise.allSettled(workers.map((w) => w.output.close?.()));
      // Its last counts go to Redis or the file before the connection closes.
      await silences.close().catch((err: Error) => logger.error({ err: err.message }, `silences not saved: ${err.message}`));
      await queue.close();
    })());

  // The address to reach it from this host (tests, check scripts), not the bind address.
  const local = (a: string) => a.replace('0.0.0.0', '127.0.0.1').replace('[::]', '[::1]');
  return {
    server,
    queue,
    get workers() {
      return workers;
    },
    metrics,
    silences,
    url: local(address),
    plainUrl: plainAddress ? local(plainAddress) : undefined,
    reload,
    stop,
  };
}

/**
 * The two tokens (auth.token and auth.apitoken), each given inline or in a file. An empty file is
 * refused: read as "no token", a Secret mounted empty by mistake would open what it should close.
 */
function readTokens(cfg: RouterConfig): { token: string; apiToken: string } {
  const read = (inline: string, file: string, key: string) => {
    if (inline || !file) return inline;
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new Error(`${key}: cannot read ${file}: ${(err as Error).message}`);
    }
    if (text === '') throw new Error(`${key}: ${file} is empty; it must hold the token`);
    return text;
  };
  return { token: read(cfg.auth.token, cfg.auth.tokenfile, 'auth.tokenfile'), apiToken: read(cfg.auth.apitoken, cfg.auth.apitokenfile, 'auth.apitokenfile') };
}

function clientTls(cfg: RouterConfig): ClientTlsFiles {
  const dir = cfg.mutualtlsfilespath;
  return {
    certfile: cfg.mutualtlsclient.certfile || `${dir}/client.crt`,
    keyfile: cfg.mutualtlsclient.keyfile || `${dir}/client.key`,
    cacertfile: cfg.mutualtlsclient.cacertfile || `${dir}/ca.crt`,
    extracafile: cfg.tlsclient.cacertfile,
  };
}
