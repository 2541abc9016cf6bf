/**
 * /api/v1/silences, as Alertmanager's silence API: create (POST), list and read (GET), expire
 * (DELETE). JSON in and out; errors are `{"error": "…"}`. Every endpoint needs the operator's
 * bearer token (auth.apitoken, or else auth.token), and is off without one: docs/routing.md#the-api.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SILENCE_LIMITS, SilenceError, parseSilenceRequest, type SilenceStore } from '../routing/silences.ts';

const BASE = '/api/v1/silences';

/** `off`: no token is configured; `denied`: the request does not carry it. */
export type OperatorAccess = 'ok' | 'off' | 'denied';

const OFF =
  "the silence API is off: it needs a bearer token, since a silence keeps alerts from the outputs. Set auth.apitoken (AUTH_APITOKEN, or a file in auth.apitokenfile): the operators' token, which leaves POST / open to Falco; or auth.token (AUTH_TOKEN), which POST / then needs too. Then send Authorization: Bearer <token>";
const DENIED = 'send Authorization: Bearer <token> (auth.apitoken, or auth.token when auth.apitoken is not set); a client certificate alone does not open the silence API';

export function registerSilenceApi(
  app: FastifyInstance,
  store: SilenceStore,
  outputs: () => string[],
  access: (req: FastifyRequest) => OperatorAccess,
  rejected: () => void,
): void {
  // On the routes themselves, as the dead-letter API: a check of the raw URL would miss /%61pi/….
  const guard = {
    onRequest: async (req: FastifyRequest, reply: FastifyReply) => {
      const a = access(req);
      if (a === 'ok') return undefined;
      rejected();
      return a === 'off' ? reply.code(403).send({ error: OFF }) : reply.code(401).header('www-authenticate', 'Bearer').send({ error: DENIED });
    },
  };
  const fail = (reply: FastifyReply, err: unknown) => {
    if (err instanceof SilenceError) return reply.code(400).send({ error: err.message, ...err.where });
    // Redis away, or the file not writable: the silence is not stored (or not changed).
    const status = store.kind === 'redis' ? 503 : 500;
    return reply.code(status).send({ error: `silences are not available: ${(err as Error).message}` });
  };
  const notFound = (reply: FastifyReply, id: string) => reply.code(404).send({ error: `no silence with id ${JSON.stringify(id.slice(0, 100))}` });

  app.post(BASE, guard, async (req, reply) => {
    const raw = req.body as Buffer | undefined;
    if (raw && raw.length > SILENCE_LIMITS.bodyBytes) return reply.code(413).send({ error: `the body is over ${SILENCE_LIMITS.bodyBytes} bytes` });
    const text = raw?.toString('utf8').trim() ?? '';
    if (text === '') return reply.code(400).send({ error: 'the body must be a JSON silence such as {"matchers": ["rule=\\"…\\""], "duration": "2h", "comment": "why", "createdBy": "who"}' });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      return reply.code(400).send({ error: `the body is not valid JSON (${(err as Error).message})` });
    }
    try {
      const created = await store.create(parseSilenceRequest(body, store.now(), outputs()), req.ip);
      return reply.code(201).header('location', `${BASE}/${created.id}`).send({ id: created.id });
    } catch (err) {
      return fail(reply, err);
    }
  });

  app.get(BASE, guard, async (_req, reply) => {
    try {
      return { silences: await store.list() };
    } catch (err) {
      return fail(reply, err);
    }
  });

  app.get<{ Params: { id: string } }>(`${BASE}/:id`, guard, async (req, reply) => {
    try {
      return (await store.get(req.params.id)) ?? notFound(reply, req.params.id);
    } catch (err) {
      return fail(reply, err);
    }
  });

  // Expires the silence, as Alertmanager: it stays listed (expired) for silences.retention. Expiring
  // one already expired answers 200 with it unchanged, so a retried DELETE is not an error.
  app.delete<{ Params: { id: string } }>(`${BASE}/:id`, guard, async (req, reply) => {
    try {
      return (await store.expire(req.params.id, req.ip)) ?? notFound(reply, req.params.id);
    } catch (err) {
      return fail(reply, err);
    }
  });

  // Without these, the catch-all ingest route would take them, and a POST to a silence's URL would be read as an alert.
  const wrong = (allowed: string) => async (_req: FastifyRequest, reply: FastifyReply) => reply.code(405).header('allow', allowed).send({ error: `use ${allowed}` });
  app.route({ method: ['PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: BASE, ...guard, handler: wrong('GET, POST') });
  app.route({ method: ['PUT', 'PATCH', 'POST', 'OPTIONS'], url: `${BASE}/:id`, ...guard, handler: wrong('GET, DELETE') });
}
