/**
 * The global settings. Every key has a default here; README lists them. Output settings are
 * validated by each output type's own schema plus `instanceCommon` below.
 */
import { z } from 'zod';
import { bool, int, byteSize, duration, stringMap, stringList, minimumPriority } from './fields.ts';

export const deliverySchema = z
  .strictObject({
    /** Attempts per event before it is dead-lettered. */
    attempts: int(1, 10_000).default(10),
    /** First retry delay; doubles each attempt, with jitter, up to maxdelay. */
    initialdelay: duration.default(1000),
    maxdelay: duration.default(300_000),
    /** Limit for one attempt (one send of a batch). */
    timeout: duration.default(10_000),
    /** Concurrent sends; the output type's default when absent. */
    concurrency: int(1, 1000).optional(),
    /** Sends per second for this output; 0 means no limit. */
    ratelimit: z.coerce.number({ message: 'must be a number' }).min(0).optional(),
    /** Most events per send; the output type's default when absent. */
    maxbatch: int(1, 10_000).optional(),
    /** How long a batch may wait for more events before it goes out part full; the type's default when absent. */
    linger: duration.optional(),
    /** Outputs that can summarise (Slack): backlog above which extra events go into a summary; 0 = never. */
    summarizeabove: int(0, 100_000_000).optional(),
  })
  .prefault({});
export type DeliverySettings = z.infer<typeof deliverySchema>;

export const instanceCommon = z.object({
  name: z
    .string({ message: 'is required' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'may hold only letters, digits, _ . and - (and must start with a letter or digit)' }),
  type: z.string({ message: 'is required' }),
  minimumpriority: minimumPriority,
  /** falcosidekick's name for the concurrency of an output. */
  maxconcurrentrequests: int(0, 1000).optional(),
  delivery: deliverySchema,
});
export const COMMON_KEYS = ['name', 'type', 'minimumpriority', 'maxconcurrentrequests', 'delivery'] as const;

export const globalSchema = z.strictObject({
  listenaddress: z.string().default(''),
  listenport: int(1, 65535).default(2801),
  /** Largest request body accepted on ingest, after gzip decoding. */
  bodylimit: byteSize.default(1024 * 1024),
  debug: bool.default(false),
  customfields: stringMap.default({}),
  customtags: stringList.default([]),
  templatedfields: stringMap.default({}),
  bracketreplacer: z.string().default(''),
  outputfieldformat: z.string().default(''),
  mutualtlsfilespath: z.string().default('/etc/certs'),
  mutualtlsclient: z
    .strictObject({ certfile: z.string().default(''), keyfile: z.string().default(''), cacertfile: z.string().default('') })
    .prefault({}),
  tlsclient: z.strictObject({ cacertfile: z.string().default('') }).prefault({}),
  queue: z
    .strictObject({
      driver: z.enum(['memory', 'redis'], { message: 'must be memory or redis' }).default('memory'),
      /** Memory driver: most events waiting per output before ingest answers 503. */
      maxevents: int(1, 100_000_000).default(100_000),
      redis: z
        .strictObject({
          url: z.string().default('redis://127.0.0.1:6379'),
          /** Key prefix, so several routers can share one Redis. */
          prefix: z.string().regex(/^[A-Za-z0-9_.:-]+$/, { message: 'may hold only letters, digits, and _ . : -' }).default('falco-router'),
          /** How long a crashed process keeps a delivery before another takes it over. */
          lockduration: duration.default(30_000),
          stalledinterval: duration.default(15_000),
        })
        .prefault({}),
      /** Group commit: most events written in one queue round trip. */
      groupmaxevents: int(1, 100_000).default(2000),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      /** On SIGTERM: how long to keep delivering what is queued (memory driver) or in flight. */
      graceperiod: duration.default(10_000),
    })
    .prefault({}),
  /** falcosidekick's TLS server: Falco's http_output can present a client certificate but not headers. */
  tlsserver: z
    .strictObject({
      deploy: bool.default(false),
      certfile: z.string().default('/etc/certs/server/server.crt'),
      keyfile: z.string().default('/etc/certs/server/server.key'),
      mutualtls: bool.default(false),
      cacertfile: z.string().default('/etc/certs/server/ca.crt'),
      notlsport: int(1, 65535).default(2810),
      notlspaths: z
        .preprocess(
          (v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter((x) => x !== '') : v),
          z.array(z.enum(['/', '/ping', '/healthz', '/ready', '/test', '/metrics'], { message: 'must be one of /, /ping, /healthz, /ready, /test, /metrics' })),
        )
        .default([]),
    })
    .prefault({}),
  /** Bearer token for senders other than Falco; never asked on /healthz, /ping, /ready. */
  auth: z
    .strictObject({
      token: z.string().default(''),
      /** A file holding the token (a mounted Secret); read at start and on reload. */
      tokenfile: z.string().default(''),
    })
    .prefault({}),
  /** POST /test: `enabled` (falcosidekick), `disabled`, or `token` (needs the bearer token). */
  testendpoint: z.enum(['enabled', 'disabled', 'token'], { message: 'must be enabled, disabled or token' }).default('enabled'),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info') }).prefault({}),
  outputs: z.array(z.record(z.string(), z.unknown())).default([]),
});
export type GlobalConfig = z.infer<typeof globalSchema>;

/** Global keys that environment variables may set, with how to read the value. */
export const GLOBAL_ENV_KEYS: Record<string, 'string' | 'map' | 'list'> = {
  listenaddress: 'string',
  listenport: 'string',
  bodylimit: 'string',
  debug: 'string',
  customfields: 'map',
  customtags: 'list',
  templatedfields: 'map',
  bracketreplacer: 'string',
  outputfieldformat: 'string',
  mutualtlsfilespath: 'string',
  'mutualtlsclient.certfile': 'string',
  'mutualtlsclient.keyfile': 'string',
  'mutualtlsclient.cacertfile': 'string',
  'tlsclient.cacertfile': 'string',
  'queue.driver': 'string',
  'queue.maxevents': 'string',
  'queue.groupmaxevents': 'string',
  'queue.redis.url': 'string',
  'queue.redis.prefix': 'string',
  'queue.redis.lockduration': 'string',
  'queue.redis.stalledinterval': 'string',
  'shutdown.graceperiod': 'string',
  'tlsserver.deploy': 'string',
  'tlsserver.certfile': 'string',
  'tlsserver.keyfile': 'string',
  'tlsserver.mutualtls': 'string',
  'tlsserver.cacertfile': 'string',
  'tlsserver.notlsport': 'string',
  'tlsserver.notlspaths': 'string',
  'auth.token': 'string',
  'auth.tokenfile': 'string',
  testendpoint: 'string',
  'log.level': 'string',
};

/** Keys whose values are maps written by users: their own keys keep their case. */
export const MAP_KEYS = new Set(['customfields', 'templatedfields', 'customheaders']);
