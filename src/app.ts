/** Wires a validated config into a running router: queue, outputs, delivery workers, HTTP server. */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RouterConfig } from './config/load.ts';
import type { OutputType } from '../outputs/types.ts';
import { MemoryQueue } from './queue/memory.ts';
import { RedisQueue } from './queue/redis.ts';
import type { QueueDriver } from './queue/types.ts';
import { DeliveryWorker } from './delivery/worker.ts';
import { GroupCommit } from './ingest/group-commit.ts';
import { buildServer } from './ingest/server.ts';
import { Metrics } from './metrics.ts';
import type { ClientTlsFiles } from './http/client.ts';

export interface Router {
  server: FastifyInstance;
  queue: QueueDriver;
  workers: DeliveryWorker[];
  metrics: Metrics;
  /** Base URL the server listens on. */
  url: string;
  /** Graceful stop: refuse new requests, then finish or hand back deliveries. */
  stop(): Promise<void>;
}

export async function startRouter(cfg: RouterConfig, types: readonly OutputType<any>[], logger: Logger): Promise<Router> {
  const queue: QueueDriver =
    cfg.queue.driver === 'redis'
      ? await RedisQueue.connect({
          url: cfg.queue.redis.url,
          prefix: cfg.queue.redis.prefix,
          lockDuration: cfg.queue.redis.lockduration,
          stalledInterval: cfg.queue.redis.stalledinterval,
          logger,
        })
      : new MemoryQueue(cfg.queue.maxevents);

  const metrics = new Metrics();
  const tls = clientTls(cfg);
  const workers: DeliveryWorker[] = [];
  const disabled: Array<{ name: string; type: string; error: string }> = [];
  for (const inst of cfg.outputs) {
    const type = types.find((t) => t.type === inst.type)!;
    try {
      const output = await type.create(inst.name, inst.settings, { logger: logger.child({ output: inst.name }), debug: cfg.debug, tls });
      workers.push(new DeliveryWorker(inst, output, queue, logger, metrics));
    } catch (err) {
      // One broken output (bad credentials, unreadable certificate) must not take the others down.
      const error = (err as Error).message;
      disabled.push({ name: inst.name, type: inst.type, error });
      logger.error({ output: inst.name, type: inst.type, err: error }, `output ${inst.name} disabled: ${error}`);
    }
  }
  for (const w of workers) w.start();

  const routable = workers.map((w) => ({ name: w.instance.name, minimumpriority: w.instance.minimumpriority }));
  const server = buildServer({
    bodyLimit: cfg.bodylimit,
    debug: cfg.debug,
    enrich: cfg,
    outputs: () => routable,
    groupCommit: new GroupCommit(queue, cfg.queue.groupmaxevents),
    queue,
    metrics,
    logger,
    readiness: async () => {
      const outputs = await Promise.all(
        workers.map(async (w) => ({
          ...w.state,
          backlog: await queue.depth(w.instance.name).catch(() => null),
          deadLetters: await queue.deadLetterCount(w.instance.name).catch(() => null),
        })),
      );
      const ready = queue.ready();
      return { ready, body: { ready, queue: { driver: queue.kind, reachable: ready }, outputs, disabled } };
    },
  });
  const address = await server.listen({ host: cfg.listenaddress || '0.0.0.0', port: cfg.listenport });
  logger.info({ outputs: cfg.outputs.map((o) => `${o.name} (${o.type})`), queue: queue.kind }, `listening on ${address}`);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const grace = cfg.shutdown.graceperiod;
      await server.close();
      await Promise.all(workers.map((w) => w.stop(grace)));
      if (queue.kind === 'memory') {
        for (const w of workers) {
          const left = await queue.depth(w.instance.name);
          if (left > 0) logger.error({ output: w.instance.name, events: left }, `stopped with ${left} events not delivered (memory queue is not durable)`);
        }
      }
      await Promise.allSettled(workers.map((w) => w.output.close?.()));
      await queue.close();
    })());

  return { server, queue, workers, metrics, url: address.replace('0.0.0.0', '127.0.0.1'), stop };
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
