/**
 * The HTTP side, falcosidekick-compatible: POST / (and any unknown path) ingests one alert,
 * /ping, /healthz, /test, plus /metrics, the dead-letter API and the silence API. Never listens by itself.
 */
import { gunzipSync } from 'node:zlib';
import { timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { EnrichSettings } from '../event/enrich.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { priorityLevel } from '../event/priority.ts';
import type { RoutingTable } from '../routing/table.ts';
import { BAD_BODY, badBodyText, readAlertBody } from './alert-body.ts';
import type { DeadLetter, QueueDriver } from '../queue/types.ts';
import { BadEventError, BadRequestError, QueueUnavailableError } from '../errors.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Metrics } from '../metrics.ts';
import { boundConnections, timeoutOptions, type ConnectionLimits } from './connections.ts';
import { RepeatLimiter } from '../log.ts';
import type { SilenceStore } from '../routing/silences.ts';
import { registerSilenceApi, type OperatorAccess } from './silences-api.ts';

/** Settings a reload can change while the server runs. */
export interface LiveSettings {
  debug: boolean;
  enrich: EnrichSettings;
  /** The output instances and what each takes, compiled once per config. */
  routing: RoutingTable;
  /** Bearer token for non-Falco senders; '' for none. */
  token: string;
  /** The operator's token (auth.apitoken); '' to use `token`. */
  apiToken: string;
  testEndpoint: 'enabled' | 'disabled' | 'token';
}

/** Route groups, named by falcosidekick's tlsserver.notlspaths keys. */
export type RouteGroup = '/' | '/ping' | '/healthz' | '/ready' | '/test' | '/metrics';
export const ALL_ROUTES: readonly RouteGroup[] = ['/', '/ping', '/healthz', '/ready', '/test', '/metrics'];

export interface ServerOptions {
  /** Only these routes (the plain-HTTP side of tlsserver.notlspaths); all when absent. */
  routes?: readonly RouteGroup[];
  https?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean; minVersion: 'TLSv1.2' };
}

export interface IngestDeps {
  bodyLimit: number;
  limits: ConnectionLimits;
  live: () => LiveSettings;
  groupCommit: GroupCommit;
  queue: QueueDriver;
  metrics: Metrics;
  logger: Logger;
  /** Run-time silences: ingest drops the outputs they cover; /api/v1/silences manages them. */
  silences?: SilenceStore;
  /** Per-output state for /ready; `detail` adds error texts (for those who may read the dead letters). */
  readiness?: (detail: boolean) => Promise<{ ready: boolean; body: unknown }>;
}

// A Buffer, so fastify does not append a charset: falcosidekick answers exactly application/json.
const HEALTHZ = Buffer.from('{"status": "ok"}');
const NOT_POST = 'Please send with post http method\n';
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

export function buildServer(deps: IngestDeps, opts: ServerOptions = {}): FastifyInstance {
  const { node, ...timeouts } = timeoutOptions(deps.limits);
  const base = { logger: false, bodyLimit: deps.bodyLimit, return503OnClosing: true, ...timeouts };
  const app = (opts.https ? Fastify({ ...base, https: { ...opts.https, ...node } }) : Fastify({ ...base, http: node })) as unknown as FastifyInstance;
  const { metrics, logger } = deps;
  boundConnections(app.server, deps.limits.maxConnections, logger);
  const repeats = new RepeatLimiter(logger);
  const serves = new Set(opts.routes ?? ALL_ROUTES);

  // Falco's Content-Type varies (and curl -d sends a form type): read every body as bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    const buf = body as Buffer;
    if (String(req.headers['content-encoding'] ?? '').toLowerCase() !== 'gzip') return done(null, buf);
    try {
      done(null, gunzipSync(buf, { maxOutputLength: deps.bodyLimit }));
    } catch (err) {
      const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      done(tooLarge ? new BadRequestError(413, `Request body too large: over ${deps.bodyLimit} bytes once decompressed (bodylimit)`) : new BadRequestError(400, `${BAD_BODY}: the gzip body cannot be decoded (${(err as Error).message})`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) {
      metrics.rejected.inc({ reason: 'tooLarge' });
      metrics.inputs.inc({ source: 'requests', status: 'rejected' });
      return text(reply, 413, err instanceof BadRequestError ? err.message : `Request body too large: the limit is ${deps.bodyLimit} bytes (bodylimit)`);
    }
    if (err instanceof BadRequestError) {
      metrics.rejected.inc({ reason: 'invalidBody' });
      metrics.inputs.inc({ source: 'requests', status: 'rejected' });
      return text(reply, err.statusCode, err.message);
    }
    // A client that hangs up mid-request is not the router's error.
    if (err.code === 'ECONNRESET' || req.raw.aborted) {
      logger.debug({ err: err.message, code: err.code }, 'client closed the connection before the request was complete');
      return reply.code(400).send();
    }
    logger.error({ err: err.message, code: err.code }, 'request failed');
    return text(reply, err.statusCode && err.statusCode < 500 ? err.statusCode : 500, `${err.message}\n`);
  });

  const ingest = async (req: FastifyRequest, reply: FastifyReply, body: string | undefined) => {
    const started = process.hrtime.bigint();
    const live = deps.live();
    let ev: FalcoEvent;
    let json: string;
    try {
      ({ event: ev, json } = await readAlertBody(body, String(req.headers['content-type'] ?? ''), live.enrich, (msg, extra) => logger.warn(extra ?? {}, msg)));
    } catch (err) {
      if (!(err instanceof BadEventError)) throw err;
      metrics.rejected.inc({ reason: err.reason });
      metrics.inputs.inc({ source: 'requests', status: 'rejected' });
      return text(reply, 400, badBodyText(err));
    }
    if (live.debug) logger.debug({ payload: json }, "Falco's payload");
    const routing = live.routing;
    const routed = routing.route(ev, deps.silences);
    try {
      await deps.groupCommit.submit(routed.targets.map((name) => [name, json] as const));
    } catch (err) {
      if (!(err instanceof QueueUnavailableError)) throw err;
      metrics.rejected.inc({ reason: 'queueUnavailable' });
      metrics.inputs.inc({ source: 'requests', status: 'rejected' });
      repeats.log('error', { err: err.message }, `event may not be stored; answered 503: ${err.message}`);
      return text(reply, 503, `Service Unavailable: the event may not be stored: ${err.message}\n`);
    }
    // Stored: what was held back now counts (a 503'd alert is not filtered, it is refused).
    for (let i = 0; i < routed.reasons.length; i++) {
      const why = routed.reasons[i];
      if (why === undefined) continue;
      metrics.filtered(routing.outputs[i].name, why);
      if (why === 'silence') deps.silences!.count(routed.silenced![i], routing.outputs[i].name);
    }
    metrics.inputs.inc({ source: 'requests', status: 'accepted' });
    metrics.falcoEvent(ev.hostname || 'unknown', ev.rule, priorityLevel(ev.priority), ev.priority.toLowerCase(), ev.source);
    metrics.ingestLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return reply.code(200).send();
  };

  /**
   * With a token configured, a request must carry it, unless it came over mutual TLS with a
   * verified client certificate (Falco's http_output cannot send headers, but can present one).
   */
  const authorized = (req: FastifyRequest): boolean => {
    const token = deps.live().token;
    if (token === '') return true;
    if ((req.raw.socket as TLSSocket).authorized === true) return true;
    return bearer(req, token);
  };
  const unauthorized = (reply: FastifyReply) => {
    metrics.rejected.inc({ reason: 'unauthorized' });
    return text(reply.header('www-authenticate', 'Bearer'), 401, 'Unauthorized: send Authorization: Bearer <token> (auth.token) or a client certificate (tlsserver.mutualtls)\n');
  };
  /**
   * The operator's API (dead letters, /ready's error texts): auth.apitoken alone when it is set,
   * so that senders' credentials do not open it; otherwise as ingest.
   */
  const operatorAuthorized = (req: FastifyRequest): boolean => {
    const api = deps.live().apiToken;
    return api !== '' ? bearer(req, api) : authorized(req);
  };
  const operatorUnauthorized = (reply: FastifyReply) => {
    if (deps.live().apiToken === '') return unauthorized(reply);
    metrics.rejected.inc({ reason: 'unauthorized' });
    return text(reply.header('www-authenticate', 'Bearer'), 401, 'Unauthorized: send Authorization: Bearer <token> (auth.apitoken)\n');
  };
  /**
   * A silence keeps alerts from the outputs, so the silence API is an operator's: only a token
   * opens it (auth.apitoken, or else auth.token). Without either it is off, since anyone who
   * reaches the port (the attacker's own pod) could otherwise silence every alert; a client
   * certificate is not enough, since every Falco sensor holds one.
   */
  const operator = (req: FastifyRequest): OperatorAccess => {
    const token = deps.live().apiToken || deps.live().token;
    if (token === '') return 'off';
    return bearer(req, token) ? 'ok' : 'denied';
  };

  const ingestRoute = (req: FastifyRequest, reply: FastifyReply) => {
    if (req.method !== 'POST') return text(reply, 400, NOT_POST);
    if (!authorized(req)) return unauthorized(reply);
    return ingest(req, reply, (req.body as Buffer | undefined)?.toString('utf8'));
  };

  if (serves.has('/')) {
    app.route({ method: [...ALL_METHODS], url: '/', handler: ingestRoute });
    app.route({ method: [...ALL_METHODS], url: '/*', handler: ingestRoute });
    registerDeadLetterApi(app, deps, operatorAuthorized, operatorUnauthorized);
    if (deps.silences) registerSilenceApi(app, deps.silences, () => deps.live().routing.outputs.map((o) => o.name), operator, () => metrics.rejected.inc({ reason: 'unauthorized' }));
  }
  if (serves.has('/ping')) app.route({ method: [...ALL_METHODS], url: '/ping', handler: (_req, reply) => text(reply, 200, 'pong\n') });
  if (serves.has('/healthz')) {
    app.route({
      method: [...ALL_METHODS],
      url: '/healthz',
      handler: (_req, reply) => reply.code(200).header('content-type', 'application/json').send(HEALTHZ),
    });
  }
  if (serves.has('/test')) {
    app.route({
      method: [...ALL_METHODS],
      url: '/test',
      handler: (req, reply) => {
        if (req.method !== 'POST') return text(reply, 400, NOT_POST);
        const mode = deps.live().testEndpoint;
        if (mode === 'disabled') return text(reply, 404, 'The test endpoint is disabled (testendpoint: disabled)\n');
        if (mode === 'token' && !authorized(req)) return unauthorized(reply);
        return ingest(req, reply, testEvent());
      },
    });
  }
  if (serves.has('/metrics')) {
    app.get('/metrics', async (_req, reply) => {
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  }
  if (serves.has('/ready')) {
    app.get('/ready', async (req, reply) => {
      const r = deps.readiness ? await deps.readiness(operatorAuthorized(req)) : { ready: deps.queue.ready(), body: {} };
      return reply.code(r.ready ? 200 : 503).send(r.body);
    });
  }
  return app;
}

/** Dead letters: list and re-queue per output (docs/operations.md). */
function registerDeadLetterApi(
  app: FastifyInstance,
  deps: IngestDeps,
  authorized: (req: FastifyRequest) => boolean,
  unauthorized: (reply: FastifyReply) => FastifyReply,
): void {
  const known = (name: string) => deps.live().routing.outputs.some((o) => o.name === name);
  // On the routes themselves, not on the raw URL: the router decodes the path before matching, so
  // a check of req.url would let /%61pi/v1/deadletters/… through without the token.
  const guard = { onRequest: async (req: FastifyRequest, reply: FastifyReply) => (authorized(req) ? undefined : unauthorized(reply)) };
  app.get('/api/v1/deadletters', guard, async () => ({
    outputs: await Promise.all(deps.live().routing.outputs.map(async (o) => ({ output: o.name, count: await deps.queue.deadLetterCount(o.name) }))),
  }));
  app.get<{ Params: { output: string }; Querystring: { limit?: string } }>('/api/v1/deadletters/:output', guard, async (req, reply) => {
    if (!known(req.params.output)) return reply.code(404).send({ error: `no output named "${req.params.output}"` });
    const limit = Math.min(Number(req.query.limit ?? 100) || 100, 10_000);
    const items = await deps.queue.listDeadLetters(req.params.output, limit);
    const count = await deps.queue.deadLetterCount(req.params.output);
    // Each event as the JSON object it is, written as stored: int64 fields stay exact.
    const q = JSON.stringify;
    const item = (d: DeadLetter) => `{"id":${q(d.id)},"output":${q(d.output)},"reason":${q(d.reason)},"attempts":${d.attempts},"failedAt":${q(d.failedAt)},"event":${d.event}}`;
    return reply
      .header('content-type', 'application/json; charset=utf-8')
      .send(`{"output":${q(req.params.output)},"count":${count},"items":[${items.map(item).join(',')}]}`);
  });
  app.post<{ Params: { output: string } }>('/api/v1/deadletters/:output/requeue', guard, async (req, reply) => {
    if (!known(req.params.output)) return reply.code(404).send({ error: `no output named "${req.params.output}"` });
    let ids: string[] | undefined;
    const raw = (req.body as Buffer | undefined)?.toString('utf8').trim();
    if (raw) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        return reply.code(400).send({ error: 'the body must be JSON such as {"ids": ["…"]}, or empty to re-queue all' });
      }
      const list = (parsed as { ids?: unknown })?.ids;
      if (list !== undefined && (!Array.isArray(list) || list.some((x) => typeof x !== 'string'))) {
        return reply.code(400).send({ error: '"ids" must be an array of dead-letter ids' });
      }
      ids = list as string[] | undefined;
    }
    try {
      return { output: req.params.output, requeued: await deps.queue.requeueDeadLetters(req.params.output, ids) };
    } catch (err) {
      if (err instanceof QueueUnavailableError) return reply.code(503).send({ error: err.message });
      throw err;
    }
  });
}

/** Whether the request carries `Authorization: Bearer <token>`, compared in constant time. */
function bearer(req: FastifyRequest, token: string): boolean {
  const given = Buffer.from(String(req.headers.authorization ?? ''));
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function text(reply: FastifyReply, status: number, body: string) {
  return reply.code(status).header('content-type', 'text/plain; charset=utf-8').header('x-content-type-options', 'nosniff').send(body);
}

/** falcosidekick's built-in /test event. */
function testEvent(): string {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  return JSON.stringify({
    output: 'This is a test from falcosidekick',
    source: 'debug',
    priority: 'Debug',
    hostname: 'falcosidekick',
    rule: 'Test rule',
    time: now,
    output_fields: { 'proc.name': 'falcosidekick', 'user.name': 'falcosidekick' },
    tags: ['test', 'example'],
  });
}
