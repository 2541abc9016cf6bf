/**
 * The global settings and the keys every output instance takes. Each field is described here, once:
 * environment variable names, falcosidekick's section keys and the reference tables in docs/ are
 * all derived from these schemas (src/config/walk.ts, scripts/docs.ts).
 */
import { z } from 'zod';
import { bool, int, byteSize, duration, stringMap, stringList, minimumPriority, matcherList, excludeList } from './fields.ts';

export const deliverySchema = z
  .strictObject({
    attempts: int(1, 10_000).default(10).describe('Attempts per alert before it is dead-lettered.'),
    initialdelay: duration.prefault('1s').describe('First retry delay; doubles per attempt with jitter (half fixed, half random).'),
    maxdelay: duration.prefault('5m').describe('Cap of the retry delay.'),
    timeout: duration.prefault('10s').describe('Limit for one attempt (one send of a batch). A set-up try gets this too, but at least 30 s.'),
    concurrency: int(1, 1000).optional().describe('Sends in flight for this instance; the type default when absent.'),
    ratelimit: z.coerce
      .number({ message: 'must be a number' })
      .min(0)
      .optional()
      .meta({ type: 'number' })
      .describe('Sends per second; 0 means no limit; the type default when absent.'),
    maxbatch: int(1, 10_000).optional().describe('Most alerts per send; the type default when absent.'),
    linger: duration
      .optional()
      .describe(
        'Outputs that batch (maxbatch > 1): how long a part-full batch may wait for more alerts. A send starts when a slot is free and maxbatch alerts wait or the oldest has waited this long. The type default when absent.',
      ),
    summarizeabove: int(0, 100_000_000)
      .optional()
      .describe(
        'Flood control: backlog above which the alerts beyond it go out as summaries (a Slack message; for other types one "Falco router summary" alert per rule) instead of one by one; 0 means never. Slack defaults to 50, every other type to 0, so an audit output keeps every alert unless told otherwise.',
      ),
  })
  .prefault({});
export type DeliverySettings = z.infer<typeof deliverySchema>;

/** Keys every output instance takes besides its type's own. */
export const instanceSchema = z.object({
  name: z
    .string({ message: 'is required' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'may hold only letters, digits, _ . and - (and must start with a letter or digit)' })
    .describe('Unique; letters, digits, _ . -. Used in logs, metrics and the dead-letter API. A falcosidekick section is named after its type.'),
  type: z.string({ message: 'is required' }).describe('The output type: one of the types in docs/outputs/.'),
  minimumpriority: minimumPriority.describe(
    'The lowest priority this output receives; "" means all. Unlike falcosidekick, `info` is accepted and a typo is an error, not "everything".',
  ),
  match: matcherList
    .default([])
    .describe(
      'Matchers that must all hold, besides minimumpriority, for an alert to go to this instance: `[\'k8s.ns.name=~"team-a-.*"\']`. Alertmanager syntax (`=`, `!=`, `=~`, `!~`, RE2 regexes, fully anchored) over rule, priority, source, hostname, tags, output and any output field; see docs/routing.md.',
    ),
  exclude: excludeList
    .default([])
    .describe('Entries `{ matchers: [...], comment: "..." }`: an alert that satisfies every matcher of one entry is not sent to this instance. Same form as the top-level exclude.'),
  maxconcurrentrequests: int(0, 1000).optional().describe("falcosidekick's name for delivery.concurrency (0 means the type default)."),
  delivery: deliverySchema.describe('Retries, batching and pacing of this instance.'),
  dedup: z
    .strictObject({
      window: duration.describe('Alerts with the same key inside this window are sent once; then one follow-up says how many more came.'),
      key: z
        .array(z.string())
        .optional()
        .describe('Fields that make two alerts the same (names as in matchers). Default: rule, priority, hostname, source and every output field except evt.* and process or thread ids (*.pid, *.ppid, *.vpid, *.tid, *.vtid).'),
    })
    .optional()
    .describe('Send one alert per key and window, and a follow-up with the count of the rest; off when absent.'),
  throttle: z
    .strictObject({
      window: duration.describe('The window the maximum applies to.'),
      max: int(1, 1_000_000).describe('Alerts per key sent one by one in a window; the rest make one summary per key when the window ends.'),
      key: z.array(z.string()).optional().describe('Fields that make the key (names as in matchers). Default: rule.'),
    })
    .optional()
    .describe('At most `max` alerts per key and window one by one, then one summary; off when absent.'),
});

const tlsServerPaths = ['/', '/ping', '/healthz', '/ready', '/test', '/metrics'] as const;

export const globalSchema = z.strictObject({
  listenaddress: z.string().default('').describe('Bind address; "" means all interfaces.'),
  listenport: int(1, 65535).default(2801).describe('Port of the ingest server.'),
  bodylimit: byteSize.prefault('1MiB').describe('Largest request body, after gzip decoding; a larger one gets 413.'),
  ingest: z
    .strictObject({
      headerstimeout: duration.prefault('10s').describe("A client must send a request's headers within this; a slower one is disconnected."),
      requesttimeout: duration.prefault('30s').describe('A client must send a whole request within this.'),
      idletimeout: duration.prefault('60s').describe('An idle keep-alive connection is closed after this.'),
      maxconnections: int(0, 1_000_000)
        .default(0)
        .describe(
          'Open ingest connections at most; at the bound the longest-idle one is closed for a new one. 0: the open-files limit less 128 (Linux), else 1000.',
        ),
    })
    .prefault({}),
  debug: bool.default(false).describe('Sets the log level to debug and logs every accepted payload (and the requests of the outputs that log theirs).'),
  customfields: stringMap.default({}).describe('Added to (overwriting) output_fields. Env values `%NAME` are read from the variable NAME.'),
  customtags: stringList.default([]).describe('Appended to tags.'),
  templatedfields: stringMap
    .default({})
    .describe('Go templates over output_fields (the dot), each result stored in output_fields under its key. A template that does not parse is a config error.'),
  bracketreplacer: z.string().default('').describe('Replaces `[` in output field names (and drops `]`).'),
  outputfieldformat: z
    .string()
    .default('')
    .describe('Rewrites output: `<timestamp>`, `<priority>`, `<output>`, `<custom_fields>`, `<templated_fields>`, `<tags>`.'),
  mutualtlsfilespath: z.string().default('/etc/certs').describe('Holds client.crt, client.key and ca.crt for outputs with mutualtls: true.'),
  mutualtlsclient: z
    .strictObject({
      certfile: z.string().default('').describe('Overrides `<mutualtlsfilespath>/client.crt`.'),
      keyfile: z.string().default('').describe('Overrides `<mutualtlsfilespath>/client.key`.'),
      cacertfile: z.string().default('').describe('Overrides `<mutualtlsfilespath>/ca.crt`.'),
    })
    .prefault({}),
  tlsclient: z.strictObject({ cacertfile: z.string().default('').describe('An extra CA trusted by every HTTP output.') }).prefault({}),
  queue: z
    .strictObject({
      driver: z.enum(['memory', 'redis'], { message: 'must be memory or redis' }).default('memory').describe('memory (in the process, not durable) or redis (BullMQ).'),
      maxevents: int(1, 100_000_000).default(100_000).describe('Memory driver: alerts waiting per output before ingest answers 503.'),
      redis: z
        .strictObject({
          url: z.string().default('redis://127.0.0.1:6379').describe('rediss:// for TLS; a password in the URL is masked in logs.'),
          prefix: z
            .string()
            .regex(/^[A-Za-z0-9_.:-]+$/, { message: 'may hold only letters, digits, and _ . : -' })
            .default('falco-router')
            .describe('Key prefix; routers with the same prefix share the work.'),
          lockduration: duration.prefault('30s').describe("A crashed process's deliveries are taken over after this."),
          stalledinterval: duration.prefault('15s').describe('How often processes look for such deliveries.'),
          depthcheckinterval: duration
            .prefault('30s')
            .describe('How often the backlog counter of each output (/ready, falco_router_queue_depth, Slack flood control) is checked against its jobs and corrected.'),
        })
        .prefault({}),
      groupmaxevents: int(1, 100_000).default(2000).describe('Most alerts written in one queue round trip (group commit).'),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      graceperiod: duration
        .prefault('10s')
        .describe('On SIGTERM or SIGINT: time to finish sends in flight (memory driver: to drain the queue); what is left goes back to Redis, or is logged.'),
    })
    .prefault({}),
  silences: z
    .strictObject({
      path: z
        .string()
        .default('')
        .describe(
          'Memory driver: the file silences are kept in (written on every change, read at start; a corrupt file stops the start). "" keeps them in memory only: a restart forgets them. With the Redis driver they are kept in Redis and this is ignored.',
        ),
      retention: duration.prefault('5d').describe('How long an expired silence stays listed (and counted) before it is removed, as Alertmanager.'),
    })
    .prefault({})
    .describe('Silences created at run time with /api/v1/silences (docs/routing.md#silences).'),
  tlsserver: z
    .strictObject({
      deploy: bool.default(false).describe('Serve ingest over TLS (falcosidekick: Falco can present a client certificate but not headers).'),
      certfile: z.string().default('/etc/certs/server/server.crt').describe('Server certificate.'),
      keyfile: z.string().default('/etc/certs/server/server.key').describe('Server key.'),
      mutualtls: bool.default(false).describe("Require a client certificate signed by cacertfile (TLS ≥ 1.2); Falco's http_output.mtls presents one."),
      cacertfile: z.string().default('/etc/certs/server/ca.crt').describe('CA of the client certificates.'),
      notlsport: int(1, 65535).default(2810).describe('Plain-HTTP port for the paths in notlspaths.'),
      notlspaths: z
        .preprocess(
          (v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter((x) => x !== '') : v),
          z.array(z.enum(tlsServerPaths, { message: `must be one of ${tlsServerPaths.join(', ')}` })),
        )
        .default([])
        .meta({ type: 'list' })
        .describe(`Paths served over plain HTTP instead of TLS, e.g. [/healthz, /ready, /metrics] for probes (${tlsServerPaths.join(', ')}).`),
    })
    .prefault({}),
  auth: z
    .strictObject({
      token: z
        .string()
        .default('')
        .describe(
          'When set, POST /, the dead-letter API (and /test with testendpoint: token) need `Authorization: Bearer <token>`, except over mutual TLS with a verified client certificate. The silence API always needs a token (a certificate is not enough) and is off without this one or auth.apitoken. Never asked on /healthz, /ping, /ready, /metrics; /ready shows error texts only with it.',
        ),
      tokenfile: z.string().default('').describe('A file holding the token (a mounted Secret); read at start and on reload.'),
      apitoken: z
        .string()
        .default('')
        .describe(
          "The operator's token, for when the senders and the operators should not share one (Falco without a client certificate cannot send a token, so auth.token would close POST / to it). When set, the silence API, the dead-letter API and /ready's error texts need `Authorization: Bearer <apitoken>` and nothing else; when empty they use auth.token as described there.",
        ),
      apitokenfile: z.string().default('').describe('A file holding auth.apitoken (a mounted Secret); read at start and on reload.'),
    })
    // Both set, one would be ignored without a word: a rotated Secret that never takes effect.
    .superRefine((a, ctx) => {
      for (const [inline, file] of [
        ['token', 'tokenfile'],
        ['apitoken', 'apitokenfile'],
      ] as const) {
        if (a[inline] !== '' && a[file] !== '') ctx.addIssue({ code: 'custom', path: [file], message: `set auth.${inline} or auth.${file}, not both` });
      }
    })
    .prefault({}),
  testendpoint: z
    .enum(['enabled', 'disabled', 'token'], { message: 'must be enabled, disabled or token' })
    .default('enabled')
    .describe('POST /test: enabled (as falcosidekick), disabled (404), or token (needs the bearer token).'),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info').describe('Logs are JSON lines on stdout.'),
    })
    .prefault({}),
  exclude: excludeList
    .default([])
    .describe(
      'Entries `{ matchers: [...], comment: "..." }`: an alert that satisfies every matcher of one entry goes to no output (each instance counts it as filtered, reason exclude). "Test rule" is never excluded. See docs/routing.md.',
    ),
  outputs: z.array(z.record(z.string(), z.unknown())).default([]).describe('Output instances.'),
});
export type GlobalConfig = z.infer<typeof globalSchema>;
