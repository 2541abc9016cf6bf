import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError, maskedOutputs, type RouterConfig } from '../../src/config/load.ts';
import { outputTypes, defaultOutput } from '../../outputs/index.ts';
import { tempDir } from '../helpers/router.ts';

function load(yaml: string | undefined, env: Record<string, string> = {}): RouterConfig {
  let file: string | undefined;
  if (yaml !== undefined) {
    file = join(tempDir(), 'config.yaml');
    writeFileSync(file, yaml);
  }
  return loadConfig({ file, env, types: outputTypes, defaultOutput });
}

function problems(yaml: string | undefined, env: Record<string, string> = {}): string[] {
  try {
    load(yaml, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a configuration error');
}

test('with no config at all, runs the embedded defaults: memory queue, file output, port 2801', () => {
  const cfg = load(undefined);
  assert.equal(cfg.listenport, 2801);
  assert.equal(cfg.queue.driver, 'memory');
  assert.equal(cfg.usingDefaultOutput, true);
  assert.deepEqual(
    cfg.outputs.map((o) => [o.name, o.type, o.settings.path]),
    [['file', 'file', 'falco-events.ndjson']],
  );
});

test('reads a falcosidekick config file unchanged: keys in any case, webhook section, global enrichment', () => {
  const cfg = load(`
ListenPort: 2802
customfields:
  Cluster: prod
customtags: [a, b]
webhook:
  address: http://hooks.internal:8080/falco
  method: put
  customHeaders:
    Authorization: Bearer x
  minimumpriority: warning
  checkcert: false
prometheus:
  extralabels: ""
loki:
  hostport: http://loki:3100
teams:
  webhookurl: ""
`);
  assert.equal(cfg.listenport, 2802);
  assert.deepEqual(cfg.customfields, { Cluster: 'prod' });
  assert.deepEqual(cfg.customtags, ['a', 'b']);
  const [hook] = cfg.outputs;
  assert.equal(hook.name, 'webhook');
  assert.equal(hook.minimumpriority, 4);
  assert.deepEqual(hook.settings, { address: 'http://hooks.internal:8080/falco', method: 'PUT', customheaders: { Authorization: 'Bearer x' }, checkcert: false, mutualtls: false });
  assert.deepEqual(cfg.warnings, ['loki: falcosidekick output not supported by this router; its alerts go nowhere (the section is ignored)'], 'only sections that enable an output warn');
});

test('takes falcosidekick environment variables, env winning over the file, with k:v,k2:v2 maps', () => {
  const cfg = load('webhook: { address: "http://from-file/", minimumpriority: error }\n', {
    WEBHOOK_ADDRESS: 'http://from-env:9000/hook',
    WEBHOOK_CUSTOMHEADERS: 'Authorization:Bearer a:b,X-Team:secops',
    CUSTOMFIELDS: 'cluster:prod,owner:%OWNER',
    OWNER: 'alice',
    CUSTOMTAGS: 'x, y',
    QUEUE_DRIVER: 'redis',
    QUEUE_REDIS_URL: 'redis://10.0.0.1:6380',
    LISTENPORT: '3000',
  });
  assert.equal(cfg.listenport, 3000);
  assert.equal(cfg.queue.driver, 'redis');
  assert.equal(cfg.queue.redis.url, 'redis://10.0.0.1:6380');
  assert.deepEqual(cfg.customfields, { cluster: 'prod', owner: 'alice' });
  assert.deepEqual(cfg.customtags, ['x', 'y']);
  const [hook] = cfg.outputs;
  assert.equal(hook.settings.address, 'http://from-env:9000/hook');
  assert.deepEqual(hook.settings.customheaders, { Authorization: 'Bearer a:b', 'X-Team': 'secops' });
  assert.equal(hook.minimumpriority, 5, 'the file value stays where env says nothing');
});

test('warns about falcosidekick environment variables that enable an output it lacks, as for file sections', () => {
  const cfg = load(undefined, { LOKI_HOSTPORT: 'http://loki:3100', TEAMS_WEBHOOKURL: 'https://example.webhook.office.com/x', WEBUI_URL: 'http://ui:2802', AWS_SQS_URL: 'https://sqs/x', AWS_REGION: 'eu-west-1', RABBITMQ_NODENAME: 'rabbit@host' });
  assert.deepEqual(cfg.warnings.sort(), [
    'AWS_SQS_URL: falcosidekick output aws.sqs is not supported by this router; ignored',
    'LOKI_HOSTPORT: falcosidekick output loki is not supported by this router; ignored',
    'TEAMS_WEBHOOKURL: falcosidekick output teams is not supported by this router; ignored',
    'WEBUI_URL: falcosidekick output webui is not supported by this router; ignored',
  ]);
});

test('lists several instances of one type in native config, with delivery settings', () => {
  const cfg = load(`
outputs:
  - name: soc
    type: webhook
    address: https://soc.example/hook
    minimumpriority: info
    delivery: { attempts: 3, initialdelay: 500ms, maxdelay: 1m, timeout: 2s, concurrency: 8 }
  - { name: audit, type: webhook, address: "http://audit:80/" }
  - { name: archive, type: file, path: /var/log/falco/events.ndjson, maxsize: 10MiB, maxfiles: 3 }
`);
  assert.deepEqual(cfg.outputs.map((o) => o.name), ['soc', 'audit', 'archive']);
  assert.equal(cfg.outputs[0].minimumpriority, 2);
  assert.deepEqual(
    { ...cfg.outputs[0].delivery },
    { attempts: 3, initialdelay: 500, maxdelay: 60_000, timeout: 2000, concurrency: 8, maxbatch: 1, linger: 0, ratelimit: 0, summarizeabove: 0 },
  );
  assert.equal(cfg.outputs[2].settings.maxsize, 10 * 1024 * 1024);
});

test('every config mistake is an error that names the key path', () => {
  const p = problems(`
listenport: 99999
queue: { driver: rabbit, redis: { prefix: "a b" } }
outputs:
  - { name: a, type: webhook, address: "not a url", minimumpriority: warn }
  - { name: a, type: file, path: /tmp/x, maxsize: huge }
  - { name: b, type: carrier-pigeon }
  - { name: c, type: webhook, address: "http://x/", adress: typo, method: PATCH, delivery: { attempts: 0, timeout: soon, linger: later } }
  - { type: file, path: /tmp/y }
`);
  const expect = [
    /^listenport: must be at most 65535$/,
    /^queue\.driver: must be memory or redis$/,
    /^queue\.redis\.prefix: may hold only/,
    /^outputs\[0\]\.minimumpriority: "warn" is not a priority; use one of emergency, alert, critical, error, warning, notice, informational \(or info\), debug$/,
    /^outputs\[0\]\.address: is not an http\(s\) URL$/,
    /^outputs\[1\]\.maxsize: "huge" is not a size/,
    /^outputs\[2\]\.type: "carrier-pigeon" is not an output type; use one of file, webhook/,
    /^outputs\[3\]: unknown setting "adress"$/,
    /^outputs\[3\]\.method: must be POST or PUT$/,
    /^outputs\[3\]\.delivery\.attempts: must be at least 1$/,
    /^outputs\[3\]\.delivery\.timeout: "soon" is not a duration/,
    /^outputs\[3\]\.delivery\.linger: "later" is not a duration/,
    /^outputs\[4\]\.name: is required$/,
  ];
  for (const re of expect) assert.ok(p.some((x) => re.test(x)), `missing ${re}\nin:\n${p.join('\n')}`);
});

test('outputs that make one call per alert refuse delivery.maxbatch above 1, so the rate limit counts their calls', () => {
  const p = problems(`outputs:\n  - { name: s, type: slack, webhookurl: "https://hooks.slack.com/services/T/B/x", delivery: { maxbatch: 10 } }\n`);
  assert.deepEqual(p, ['outputs[0].delivery.maxbatch: slack makes one call per alert; it must be at most 1']);
});

test('a token given both inline and as a file is refused, naming both keys (one would be ignored)', () => {
  assert.deepEqual(problems('auth: { apitoken: abcdefgh, apitokenfile: /run/secrets/apitoken }\n'), ['auth.apitokenfile: set auth.apitoken or auth.apitokenfile, not both']);
  assert.deepEqual(problems(undefined, { AUTH_TOKEN: 'abcdefgh', AUTH_TOKENFILE: '/run/secrets/token' }), ['auth.tokenfile: set auth.token or auth.tokenfile, not both']);
  assert.deepEqual(load('auth: { token: abcdefgh, apitokenfile: /run/secrets/apitoken }\n', {}).auth.apitokenfile, '/run/secrets/apitoken', 'a token of each kind is fine');
});

test('rejects duplicate output names', () => {
  const p = problems('webhook: { address: "http://a/" }\noutputs: [{ name: webhook, type: file, path: /tmp/x }]\n');
  assert.ok(p.some((x) => /^webhook\.name: "webhook" is already used by outputs\[0\]/.test(x)), p.join('\n'));
});

test('names the env var when an env value is wrong', () => {
  const p = problems(undefined, { WEBHOOK_ADDRESS: 'http://x/', WEBHOOK_MINIMUMPRIORITY: 'crit', WEBHOOK_CUSTOMHEADERS: 'novalue', CUSTOMFIELDS: 'a:%MISSING' });
  assert.ok(p.some((x) => /^webhook\.minimumpriority: "crit" is not a priority/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /^WEBHOOK_CUSTOMHEADERS: entry 1 is not a key:value pair/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /^CUSTOMFIELDS: a refers to env var MISSING, which is not set$/.test(x)), p.join('\n'));
});

test('reports an unreadable or malformed file and a bad template clearly', () => {
  assert.throws(() => loadConfig({ file: '/nonexistent/config.yaml', env: {}, types: outputTypes }), /cannot read config file \/nonexistent\/config\.yaml/);
  assert.ok(problems('outputs: [ {').some((x) => /is not valid YAML/.test(x)));
  assert.ok(problems('templatedfields: { ns: "{{ if }" }\n').some((x) => /^templatedfields\.ns: not a valid Go template/.test(x)));
});

test('a config error never quotes a secret: not the YAML line around a syntax error, not a malformed env entry', () => {
  const yaml = problems('slack:\n  webhookurl: https://hooks.slack.com/services/T0123ABCD/B0456EFGH/SuperSecretToken\n bad: indent\n');
  const env = problems(undefined, { WEBHOOK_ADDRESS: 'http://x/', WEBHOOK_CUSTOMHEADERS: 'Authorization Bearer s3cretTokenValue99' });
  for (const p of [...yaml, ...env]) assert.ok(!/SuperSecret|T0123ABCD|s3cretTokenValue99/.test(p), p);
  assert.match(yaml[0], /is not valid YAML: .*line 3/);
});

test('masks secrets when showing the effective outputs', () => {
  const cfg = load('webhook: { address: "https://hooks.example/T0/secret", customheaders: { Authorization: "Bearer s3cret" } }\n');
  const shown = JSON.stringify(maskedOutputs(cfg, outputTypes));
  assert.ok(!shown.includes('secret') && !shown.includes('s3cret'), shown);
});

test('the example configs in config/ are valid', () => {
  for (const name of ['example.yaml', 'falcosidekick.yaml']) {
    const cfg = loadConfig({ file: join(import.meta.dirname, '..', '..', 'config', name), env: {}, types: outputTypes });
    assert.ok(cfg.outputs.length > 0, name);
  }
});

test('match and exclude: matcher strings on every output type and a global exclude, parsed at start', () => {
  const cfg = load(`
exclude:
  - matchers: ['k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"']
    comment: controllers that talk to the API server by design
outputs:
  - name: slack-team-a
    type: slack
    webhookurl: https://hooks.slack.com/services/T0/B0/x
    minimumpriority: warning
    match: ['k8s.ns.name=~"team-a-.*"']
    exclude:
      - matchers: ['rule="Terminal shell in container"', 'user.name="ci-bot"']
  - { name: archive, type: file, path: /tmp/x }
slack:
  webhookurl: https://hooks.slack.com/services/T0/B0/y
  match: ['"k8s.ns.name" = "team-b"']
`);
  assert.deepEqual(cfg.exclude.map((e) => [e.matchers.map(String), e.comment]), [
    [['k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"'], 'controllers that talk to the API server by design'],
  ]);
  const [a, archive, slack] = cfg.outputs;
  assert.deepEqual(a.match?.map(String), ['k8s.ns.name=~"team-a-.*"']);
  assert.deepEqual(a.exclude?.map((e) => [e.matchers.map(String), e.comment]), [[['rule="Terminal shell in container"', 'user.name="ci-bot"'], '']]);
  assert.deepEqual([archive.match, archive.exclude], [[], []], 'none by default');
  assert.deepEqual(slack.match?.map(String), ['k8s.ns.name="team-b"'], 'a falcosidekick section takes them too');
  assert.deepEqual(cfg.warnings, []);
});

test('a bad matcher is an error naming the key path and the column', () => {
  const p = problems(`
exclude:
  - matchers: ['rule="x"']
  - matchers: ['k8s.ns.name=="x"']
  - matchers: []
  - comment: no matchers at all
  - matchers: 'rule="x"'
  - matchers: ['rule="x"']
    coment: typo
outputs:
  - { name: a, type: file, path: /tmp/a }
  - { name: b, type: file, path: /tmp/b, match: ['rule="ok"'] }
  - { name: c, type: file, path: /tmp/c, match: ['rule="ok"', 'proc.name=~"(a"', 42, 'k8s.ns-name="x"'] }
  - { name: d, type: webhook, address: "http://x/", match: 'rule="x"', exclude: [{ matchers: ['rule="unterminated'] }] }
`);
  const expect = [
    /^exclude\[1\]\.matchers\[0\]: unexpected '=' at column 13: expected a value in double quotes$/,
    /^exclude\[2\]\.matchers: must list at least one matcher \(an entry without any would drop every alert\)$/,
    /^exclude\[3\]\.matchers: is required$/,
    /^exclude\[4\]\.matchers: must be a list of matcher strings$/,
    /^exclude\[5\]: unknown setting "coment"$/,
    /^outputs\[2\]\.match\[1\]: invalid regular expression at column 12: missing closing \)$/,
    /^outputs\[2\]\.match\[2\]: must be a matcher string such as rule="Terminal shell in container"$/,
    /^outputs\[2\]\.match\[3\]: unexpected '-' at column 7: a name holding characters other than letters, digits, _ \. \[ \] is written in double quotes$/,
    /^outputs\[3\]\.match: must be a list of matcher strings/,
    /^outputs\[3\]\.exclude\[0\]\.matchers\[0\]: unterminated quoted value starting at column 6$/,
  ];
  for (const re of expect) assert.ok(p.some((x) => re.test(x)), `missing ${re}\nin:\n${p.join('\n')}`);
  assert.equal(p.length, expect.length, p.join('\n'));
});

test('warns about a priority matcher no alert can satisfy (priorities read Warning, not warning)', () => {
  const cfg = load(`
exclude: [{ matchers: ['priority!="debug"'] }]
outputs:
  - { name: a, type: file, path: /tmp/a, match: ['priority="warning"', 'priority="Warning"', 'priority=~"warning"'] }
  - { name: b, type: file, path: /tmp/b, exclude: [{ matchers: ['priority="urgent"'] }] }
`);
  assert.deepEqual(cfg.warnings, [
    'exclude[0].matchers[0]: priority!="debug" compares with a priority no alert has (matching is case-sensitive); write priority!="Debug"',
    'outputs[0].match[0]: priority="warning" compares with a priority no alert has (matching is case-sensitive); write priority="Warning"',
    'outputs[1].exclude[0].matchers[0]: priority="urgent" compares with a priority no alert has (matching is case-sensitive); priorities are Debug, Informational, Notice, Warning, Error, Critical, Alert, Emergency',
  ]);
});

test('match and exclude have no environment variables; env values for them are not read and break nothing', () => {
  const cfg = load('slack: { webhookurl: "https://hooks.slack.com/services/T0/B0/y" }\n', {
    EXCLUDE: 'rule="x"',
    SLACK_MATCH: 'rule="x"',
    SLACK_EXCLUDE: 'garbage',
    WEBHOOK_MATCH: 'rule="x"',
  });
  assert.deepEqual(cfg.exclude, []);
  assert.deepEqual(cfg.outputs.map((o) => [o.name, o.match, o.exclude]), [['slack', [], []]]);
});
