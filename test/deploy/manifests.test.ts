/**
 * The deployment files, checked offline: the kustomizations are rendered with `kustomize build`,
 * docker-compose.yml is checked against the Compose schema by dclint, the Dockerfile goes through
 * dockerfilelint, and then what matters is asserted on the result. The config files they ship are
 * run through `check-config` with the environment the manifests set, and the image's entrypoint
 * and HEALTHCHECK are run against a build laid out as in the image.
 *
 * Tools: kustomize, dclint and dockerfilelint are pinned devDependencies, run from
 * node_modules/.bin, so `npm ci` is all this file needs; nothing comes from the machine's PATH.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

type Obj = Record<string, any>;

// ---------------------------------------------------------------------------------------------
// helpers

/** A devDependency's command; fails the test, saying what to run, when node_modules lacks it. */
function tool(name: string): string {
  const bin = join(ROOT, 'node_modules/.bin', name);
  if (!existsSync(bin)) assert.fail(`${bin} is missing: it is a devDependency, run \`npm ci\``);
  return bin;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function kustomize(dir: string): Obj[] {
  const r = run(tool('kustomize'), ['build', dir]);
  assert.equal(r.status, 0, `kustomize build ${dir} failed:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /deprecated/i, `kustomize build ${dir} warns:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}

function find(docs: Obj[], kind: string, name: string | RegExp): Obj {
  const doc = docs.find((d) => d.kind === kind && (typeof name === 'string' ? d.metadata?.name === name : name.test(d.metadata?.name)));
  assert.ok(doc, `no ${kind} ${name} in the rendered manifests (have: ${docs.map((d) => `${d.kind}/${d.metadata?.name}`).join(', ')})`);
  return doc;
}

function envOf(container: Obj): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) if (typeof e.value === 'string') env[e.name] = e.value;
  return env;
}

/** A probe's or Service's port: a number, or the name of one of the container's ports. */
function resolvePort(container: Obj, port: number | string): number {
  if (typeof port === 'number') return port;
  const p = (container.ports ?? []).find((x: Obj) => x.name === port);
  assert.ok(p, `container ${container.name} has no port named ${port}`);
  return p.containerPort;
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** What every router container must have, whichever pod it runs in. */
function assertRouterContainer(c: Obj, pod: Obj, volumes: Obj[], docs: Obj[]): void {
  const port = resolvePort(c, c.ports?.[0]?.containerPort ?? 0);
  assert.equal(port, 2801, 'the router listens on 2801');
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', 'liveness probes /healthz');
  assert.equal(resolvePort(c, c.livenessProbe.httpGet.port), 2801);
  assert.equal(c.readinessProbe?.httpGet?.path, '/ready', 'readiness probes /ready');
  assert.equal(resolvePort(c, c.readinessProbe.httpGet.port), 2801);
  if (c.startupProbe) assert.equal(resolvePort(c, c.startupProbe.httpGet.port), 2801);

  for (const kind of ['requests', 'limits'] as const) {
    assert.ok(c.resources?.[kind]?.cpu && c.resources?.[kind]?.memory, `router container sets resources.${kind} cpu and memory`);
  }
  assert.ok(
    !('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED' in envOf(c)),
    'the image runs a Node line the AWS SDK supports: its warnings are not hidden',
  );

  const sc = { ...(pod.securityContext ?? {}), ...(c.securityContext ?? {}) };
  assert.equal(sc.runAsNonRoot, true, 'runAsNonRoot');
  assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, 'runAsUser is a non-root uid');
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true, 'read-only root filesystem');
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false, 'no privilege escalation');
  assert.ok(!c.securityContext?.privileged, 'not privileged');

  // Everything the router writes has a writable volume; the config file has its volume.
  const mounts: Obj[] = c.volumeMounts ?? [];
  for (const m of mounts) assert.ok(volumes.some((v) => v.name === m.name), `volume ${m.name} is defined`);
  for (const path of ['/var/lib/falco-router', '/tmp']) {
    const m = mounts.find((x) => x.mountPath === path);
    assert.ok(m && !m.readOnly, `${path} is a writable mount (read-only root fs)`);
    assert.ok(volumes.find((v) => v.name === m.name)?.emptyDir, `${path} is an emptyDir`);
  }
  const args: string[] = c.args ?? [];
  const configPath = args[args.indexOf('-c') + 1];
  assert.ok(args.includes('-c') && configPath, 'the router is given -c CONFIG');
  const cfgMount = mounts.find((m) => configPath.startsWith(m.mountPath + '/'));
  assert.ok(cfgMount, `${configPath} is on a mounted volume`);
  const cfgVolume = volumes.find((v) => v.name === cfgMount.name);
  assert.ok(cfgVolume?.configMap?.name, 'the config comes from a ConfigMap');
  const cm = find(docs, 'ConfigMap', cfgVolume.configMap.name);
  const key = configPath.slice(cfgMount.mountPath.length + 1);
  assert.ok(typeof cm.data?.[key] === 'string', `ConfigMap ${cm.metadata.name} holds ${key}`);
}

/** Runs the router's own validation on a config file with the given environment. */
function checkConfig(configText: string, env: Record<string, string>): Obj {
  const dir = mkdtempSync(join(tmpdir(), 'router-deploy-cfg-'));
  try {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, configText);
    const r = run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check-config', '-c', file], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    });
    assert.equal(r.status, 0, `check-config rejects the shipped config:\n${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout) as Obj;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

describe('deploy/base (Deployment + Redis)', () => {
  let docs: Obj[];
  before(() => {
    docs = kustomize('deploy/base');
  });

  test('renders the router, its Service, ServiceAccount, ConfigMap and a Redis', () => {
    for (const [kind, name] of [
      ['Deployment', 'falco-router'],
      ['Service', 'falco-router'],
      ['ServiceAccount', 'falco-router'],
      ['Deployment', 'falco-router-redis'],
      ['Service', 'falco-router-redis'],
      ['PersistentVolumeClaim', 'falco-router-redis'],
    ] as const) {
      find(docs, kind, name);
    }
    find(docs, 'ConfigMap', /^falco-router-config-/);
  });

  test('two router replicas with probes, resources and a non-root, read-only container', () => {
    const dep = find(docs, 'Deployment', 'falco-router');
    assert.equal(dep.spec.replicas, 2);
    const pod = dep.spec.template.spec;
    assert.ok(labelsMatch(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels), 'selector matches the pod');
    const c = pod.containers.find((x: Obj) => x.name === 'router');
    assert.ok(c, 'a container named router');
    assert.match(c.image, /falco-router/);
    assertRouterContainer(c, pod, pod.volumes, docs);
  });

  test('the Service exposes 2801 and selects the router pods', () => {
    const dep = find(docs, 'Deployment', 'falco-router');
    const svc = find(docs, 'Service', 'falco-router');
    assert.ok(labelsMatch(svc.spec.selector, dep.spec.template.metadata.labels), 'Service selects the router pods');
    const c = dep.spec.template.spec.containers[0];
    assert.equal(svc.spec.ports.length, 1);
    assert.equal(svc.spec.ports[0].port, 2801);
    assert.equal(resolvePort(c, svc.spec.ports[0].targetPort), 2801);
  });

  test('the router uses the Redis driver, pointed at the bundled Redis Service', () => {
    const dep = find(docs, 'Deployment', 'falco-router');
    const env = envOf(dep.spec.template.spec.containers[0]);
    assert.equal(env.QUEUE_DRIVER, 'redis');
    const url = new URL(env.QUEUE_REDIS_URL);
    const redisSvc = find(docs, 'Service', 'falco-router-redis');
    assert.equal(url.protocol, 'redis:');
    assert.equal(url.hostname, redisSvc.metadata.name);
    assert.equal(Number(url.port), redisSvc.spec.ports[0].port);
  });

  test('Redis keeps an append-only file on a persistent volume', () => {
    const redis = find(docs, 'Deployment', 'falco-router-redis');
    const redisSvc = find(docs, 'Service', 'falco-router-redis');
    assert.equal(redis.spec.replicas, 1);
    assert.equal(redis.spec.strategy?.type, 'Recreate', 'RWO volume: old pod stops first');
    assert.ok(labelsMatch(redisSvc.spec.selector, redis.spec.template.metadata.labels), 'Service selects the Redis pod');
    const pod = redis.spec.template.spec;
    const c = pod.containers[0];
    assert.match(c.image, /^redis:7/);
    const args: string[] = [...(c.command ?? []), ...(c.args ?? [])];
    assert.equal(args[args.indexOf('--appendonly') + 1], 'yes', 'appendonly yes');
    assert.equal(args[args.indexOf('--maxmemory-policy') + 1], 'noeviction', 'BullMQ needs noeviction');
    assert.equal(resolvePort(c, redisSvc.spec.ports[0].targetPort), 6379);
    const data = c.volumeMounts.find((m: Obj) => m.mountPath === '/data');
    const vol = pod.volumes.find((v: Obj) => v.name === data?.name);
    assert.ok(vol?.persistentVolumeClaim, '/data is a PersistentVolumeClaim');
    find(docs, 'PersistentVolumeClaim', vol.persistentVolumeClaim.claimName);
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.ok(c.resources?.requests && c.resources?.limits, 'Redis sets requests and limits');
  });

  test('a ServiceAccount ready for IRSA', () => {
    const dep = find(docs, 'Deployment', 'falco-router');
    const sa = find(docs, 'ServiceAccount', 'falco-router');
    assert.equal(dep.spec.template.spec.serviceAccountName, sa.metadata.name);
    // The role ARN is account-specific: the annotation is there, commented, to fill in.
    assert.match(readFileSync(join(ROOT, 'deploy/base/serviceaccount.yaml'), 'utf8'), /#\s*eks\.amazonaws\.com\/role-arn:/);
  });

  test('everything lands in one namespace with the same part-of label', () => {
    for (const d of docs) {
      assert.equal(d.metadata.namespace, 'falco', `${d.kind}/${d.metadata.name} namespace`);
      assert.equal(d.metadata.labels?.['app.kubernetes.io/part-of'], 'falco-router', `${d.kind}/${d.metadata.name} label`);
    }
  });

  test('the shipped config passes check-config with the Deployment\'s environment', () => {
    const dep = find(docs, 'Deployment', 'falco-router');
    const cm = find(docs, 'ConfigMap', /^falco-router-config-/);
    const out = checkConfig(cm.data['config.yaml'], envOf(dep.spec.template.spec.containers[0]));
    assert.equal(out.queue, 'redis');
  });
});

describe('deploy/overlays/sidecar (router next to Falco, memory queue)', () => {
  let docs: Obj[];
  before(() => {
    docs = kustomize('deploy/overlays/sidecar');
  });

  function pod(): Obj {
    return find(docs, 'DaemonSet', 'falco').spec.template.spec;
  }
  function router(): Obj {
    const p = pod();
    const c = [...(p.initContainers ?? []), ...(p.containers ?? [])].find((x: Obj) => x.name === 'falco-router');
    assert.ok(c, 'the Falco pod has a falco-router container');
    return c;
  }

  test('renders on its own: a Falco DaemonSet with the router in its pod, no Redis', () => {
    find(docs, 'DaemonSet', 'falco');
    router();
    assert.ok(!docs.some((d) => /redis/.test(d.metadata.name)), 'no Redis in the sidecar shape');
    assert.ok(!docs.some((d) => d.kind === 'Deployment'), 'no Deployment in the sidecar shape');
  });

  test('the router runs as a native sidecar, started before Falco and stopped after it', () => {
    const p = pod();
    const init = (p.initContainers ?? []).find((x: Obj) => x.name === 'falco-router');
    assert.ok(init, 'falco-router is an init container');
    assert.equal(init.restartPolicy, 'Always', 'restartPolicy: Always makes it a sidecar');
    assert.ok(init.startupProbe, 'a startup probe holds Falco back until the router listens');
  });

  test('the router uses the memory queue and has probes, resources and a non-root, read-only container', () => {
    const c = router();
    assert.equal(envOf(c).QUEUE_DRIVER, 'memory');
    assertRouterContainer(c, pod(), pod().volumes, docs);
  });

  test('Falco sends JSON to the router on localhost', () => {
    const falco = pod().containers.find((x: Obj) => x.name === 'falco');
    assert.ok(falco, 'a container named falco');
    const args: string[] = [...(falco.command ?? []), ...(falco.args ?? [])];
    const opts = new Map<string, string>();
    args.forEach((a, i) => {
      if (a === '-o') {
        const [k, ...v] = args[i + 1].split('=');
        opts.set(k, v.join('='));
      }
    });
    assert.equal(opts.get('json_output'), 'true');
    assert.equal(opts.get('json_include_output_property'), 'true');
    assert.equal(opts.get('http_output.enabled'), 'true');
    const url = new URL(opts.get('http_output.url') ?? '');
    assert.equal(url.hostname, 'localhost');
    assert.equal(Number(url.port), resolvePort(router(), router().ports[0].containerPort));
    assert.equal(url.pathname, '/');
  });

  test('the shipped config passes check-config with the sidecar\'s environment', () => {
    const c = router();
    const vol = pod().volumes.find((v: Obj) => v.name === c.volumeMounts.find((m: Obj) => m.mountPath === '/etc/falco-router').name);
    const cm = find(docs, 'ConfigMap', vol.configMap.name);
    const out = checkConfig(cm.data['config.yaml'], envOf(c));
    assert.equal(out.queue, 'memory');
  });
});

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

describe('docker-compose.yml', () => {
  const file = join(ROOT, 'docker-compose.yml');
  let compose: Obj;
  before(() => {
    compose = parseYaml(readFileSync(file, 'utf8')) as Obj;
  });

  function envMap(svc: Obj): Record<string, string> {
    const e = svc.environment ?? {};
    if (!Array.isArray(e)) return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, String(v)]));
    return Object.fromEntries((e as string[]).map((s) => [s.split('=')[0], s.split('=').slice(1).join('=')]));
  }

  test('matches the Compose schema and passes dclint (rules set in .dclintrc.yaml)', () => {
    const r = run(tool('dclint'), ['-c', join(ROOT, '.dclintrc.yaml'), '-f', 'json', file]);
    let report: Array<{ messages: Array<{ rule: string; line: number; message: string }> }>;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      assert.fail(`dclint (exit ${r.status}) printed no report:\n${r.stderr}${r.stdout}`);
    }
    // Warnings count too: a rule that does not fit is switched off, with its reason, in .dclintrc.yaml.
    const findings = report.flatMap((f) => f.messages).map((m) => `${m.line}: ${m.rule}: ${m.message}`);
    assert.deepEqual(findings, [], `dclint on docker-compose.yml:\n${findings.join('\n')}`);
    assert.equal(r.status, 0, `dclint exited ${r.status}:\n${r.stderr}`);
  });

  test('builds the router from the Dockerfile and publishes 2801', () => {
    const router = compose.services.router;
    const build = typeof router.build === 'string' ? { context: router.build } : router.build;
    assert.ok(existsSync(join(ROOT, build.context, build.dockerfile ?? 'Dockerfile')), 'build context holds the Dockerfile');
    assert.ok(
      (router.ports as Array<string | Obj>).some((p) => (typeof p === 'string' ? /(^|:)2801$/.test(p) && p.includes('2801:') : p.target === 2801)),
      'port 2801 is published',
    );
  });

  test('the router uses Redis and waits for it to be healthy', () => {
    const { router, redis } = compose.services;
    const env = envMap(router);
    assert.equal(env.QUEUE_DRIVER, 'redis');
    assert.equal(new URL(env.QUEUE_REDIS_URL).hostname, 'redis');
    assert.equal(router.depends_on?.redis?.condition, 'service_healthy');
    assert.ok(redis.healthcheck?.test, 'redis has a healthcheck');
  });

  test('Redis runs with the append-only file on a named volume', () => {
    const { redis } = compose.services;
    assert.match(redis.image, /^redis:7/);
    const cmd: string[] = Array.isArray(redis.command) ? redis.command : String(redis.command).split(/\s+/);
    assert.equal(cmd[cmd.indexOf('--appendonly') + 1], 'yes');
    const data = (redis.volumes as string[]).find((v) => v.split(':')[1] === '/data');
    assert.ok(data, 'a volume on /data');
    assert.ok(Object.keys(compose.volumes ?? {}).includes(data.split(':')[0]), '/data is a named volume');
  });

  test('bind-mounted files exist and the mounted config passes check-config with the compose environment', () => {
    const router = compose.services.router;
    const binds = (router.volumes as string[]).filter((v) => v.startsWith('./') || v.startsWith('/'));
    for (const b of binds) assert.ok(existsSync(join(ROOT, b.split(':')[0])), `${b.split(':')[0]} exists`);
    const cmd: string[] = router.command;
    const configPath = cmd[cmd.indexOf('-c') + 1];
    const bind = binds.find((b) => b.split(':')[1] === configPath);
    assert.ok(bind, `${configPath} is bind-mounted`);
    const out = checkConfig(readFileSync(join(ROOT, bind.split(':')[0]), 'utf8'), envMap(router));
    assert.equal(out.queue, 'redis');
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instr {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  image: string;
  name?: string;
  instrs: Instr[];
}

function parseDockerfile(text: string): Stage[] {
  const instrs: Instr[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) return;
    if (buf !== '' && line.startsWith('#')) return;
    if (buf === '') start = i + 1;
    if (line.endsWith('\\')) {
      buf += line.slice(0, -1) + ' ';
      return;
    }
    buf += line;
    const m = /^(\S+)\s*(.*)$/.exec(buf)!;
    instrs.push({ op: m[1].toUpperCase(), args: m[2], line: start });
    buf = '';
  });
  const stages: Stage[] = [];
  for (const ins of instrs) {
    if (ins.op === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ image: m[1], name: m[2], instrs: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1].instrs.push(ins);
    }
  }
  return stages;
}

/** .dockerignore: last matching rule wins; a rule matching a directory covers what is inside. */
function dockerIgnored(rules: string[], rel: string): boolean {
  let ignored = false;
  const parts = rel.split('/');
  for (const rule of rules) {
    const neg = rule.startsWith('!');
    const pat = (neg ? rule.slice(1) : rule).replace(/^\/+|\/+$/g, '');
    const re = new RegExp(
      '^' +
        pat
          .split('**')
          .map((s) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
          .join('.*') +
        '$',
    );
    for (let n = 1; n <= parts.length; n++) {
      if (re.test(parts.slice(0, n).join('/'))) {
        ignored = !neg;
        break;
      }
    }
  }
  return ignored;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const stages = parseDockerfile(text);
  const final = stages[stages.length - 1];
  const finalOps = (op: string) => final.instrs.filter((i) => i.op === op);

  test('passes dockerfilelint', () => {
    const r = run(tool('dockerfilelint'), ['-j', 'Dockerfile']);
    const report = JSON.parse(r.stdout) as { files: Array<{ issues: Array<{ line: string; title: string; content: string }> }> };
    const issues = report.files.flatMap((f) => f.issues).filter(
      // dockerfilelint 1.8.0 reads HEALTHCHECK options with /--\w+/, so it sees `--start` in
      // `--start-period` (a valid option) as unknown. Only that false positive is let through.
      (i) => !(i.title === 'Invalid Argument Format' && /^HEALTHCHECK .*--start-period=/.test(i.content)),
    );
    assert.deepEqual(issues, [], `dockerfilelint:\n${JSON.stringify(issues, null, 2)}`);
  });

  test('is multi-stage: dev dependencies and tsc in a build stage, a slim runtime with production dependencies', () => {
    assert.ok(stages.length >= 2, 'more than one stage');
    const names = new Set(stages.map((s) => s.name).filter(Boolean));
    const runs = (s: Stage) => s.instrs.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.ok(stages.some((s) => /npm ci(?!.*--omit=dev)/.test(runs(s)) && /npm run build/.test(runs(s))), 'a stage installs all dependencies and builds');
    const prodStage = stages.find((s) => /npm ci .*--omit=dev/.test(runs(s)));
    assert.ok(prodStage, 'a stage installs production dependencies only');
    for (const s of stages) assert.match(s.image, /^node:24[-.\w]*-slim$/, `stage ${s.name}: node 24 (an LTS line in support), slim`);
    assert.ok(!/npm (ci|install)(?!.*--omit=dev)/.test(runs(final)), 'no dev dependencies in the runtime stage');
    for (const c of finalOps('COPY')) {
      const from = /--from=(\S+)/.exec(c.args)?.[1];
      if (from) assert.ok(names.has(from), `COPY --from=${from} names a stage`);
    }
    const copied = finalOps('COPY').map((c) => c.args);
    assert.ok(copied.some((a) => a.includes(`--from=${prodStage.name}`) && a.includes('node_modules')), 'runtime takes node_modules from the production stage');
    assert.ok(copied.some((a) => /--from=\S+ \S*\/dist /.test(a)), 'runtime takes dist/ from the build stage');
    assert.ok(!copied.some((a) => /\b(src|outputs|test)\b/.test(a) && !a.includes('/dist')), 'no sources in the runtime image');
  });

  test('runtime: non-root user, port 2801, HEALTHCHECK with node on /healthz, AWS SDK warnings shown', () => {
    const users = finalOps('USER');
    assert.ok(users.length > 0, 'USER is set');
    const user = users[users.length - 1].args.split(':')[0];
    assert.match(user, /^\d+$/, 'USER is numeric, so Kubernetes can verify runAsNonRoot');
    assert.notEqual(Number(user), 0, 'USER is not root');
    assert.ok(finalOps('EXPOSE').some((e) => e.args.split(/\s+/).includes('2801')), 'EXPOSE 2801');
    const hc = finalOps('HEALTHCHECK');
    assert.equal(hc.length, 1, 'one HEALTHCHECK');
    const cmd = JSON.parse(hc[0].args.slice(hc[0].args.indexOf('CMD ') + 4)) as string[];
    assert.equal(cmd[0], 'node', 'the healthcheck runs node (no curl in slim images)');
    assert.match(cmd.join(' '), /\/healthz/);
    // The image runs a Node line the AWS SDK supports: a warning from it would be news.
    const env = finalOps('ENV').map((e) => e.args).join(' ');
    assert.doesNotMatch(env, /AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED/);
    const entry = JSON.parse(finalOps('ENTRYPOINT')[0].args) as string[];
    assert.deepEqual(entry, ['node', '/app/dist/src/main.js']);
  });

  test('the build context (.dockerignore) holds what the Dockerfile copies, and every source the build compiles', () => {
    const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const sources: string[] = [];
    for (const s of stages) {
      for (const c of s.instrs.filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))) {
        const words = c.args.split(/\s+/).filter((w) => !w.startsWith('--'));
        sources.push(...words.slice(0, -1));
      }
    }
    for (const src of sources) {
      const abs = join(ROOT, src);
      assert.ok(existsSync(abs), `COPY ${src}: exists`);
      const files = statSync(abs).isDirectory() ? walk(abs) : [abs];
      for (const f of files) assert.ok(!dockerIgnored(rules, relative(ROOT, f)), `COPY ${src}: ${relative(ROOT, f)} is excluded by .dockerignore`);
    }
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const inc of build.include) assert.ok(sources.includes(inc.replace(/\/.*$/, '')), `tsconfig.build.json compiles ${inc}: the Dockerfile copies it`);
    for (const f of ['.git/HEAD', 'node_modules/yaml/package.json', 'test/deploy/manifests.test.ts', '.env']) {
      assert.ok(dockerIgnored(rules, f), `${f} stays out of the build context`);
    }
  });

  describe('the built entrypoint, laid out as in the image', () => {
    let dir: string;
    let proc: ChildProcess | undefined;
    let port: number;
    const healthcheck = () => {
      const hc = finalOps('HEALTHCHECK')[0];
      return JSON.parse(hc.args.slice(hc.args.indexOf('CMD ') + 4)) as string[];
    };
    const env = () => ({ PATH: process.env.PATH, HOME: process.env.HOME, LISTENPORT: String(port), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });

    let built = false;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'router-image-'));
      mkdirSync(join(dir, 'data'), { recursive: true });
      port = await freePort();
    });

    test('npm run build (tsc -p tsconfig.build.json) compiles cleanly', () => {
      // /app/{package.json,node_modules,dist} as the runtime stage has them; cwd = the data dir.
      const app = join(dir, 'app');
      const tsc = run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(app, 'dist')]);
      assert.equal(tsc.status, 0, `the image's build step would fail:\n${tsc.stdout}${tsc.stderr}`);
      cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
      symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
      built = true;
    });

    after(async () => {
      if (proc && proc.exitCode === null) {
        proc.kill('SIGKILL');
        await new Promise((r) => proc!.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    });

    test('--version prints the package version', () => {
      assert.ok(built, 'the build failed (see above)');
      const r = run(process.execPath, [join(dir, 'app/dist/src/main.js'), '--version'], { cwd: join(dir, 'data'), env: env() });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), PKG.version);
    });

    test('the router starts, the HEALTHCHECK passes, and fails once it stops', async () => {
      assert.ok(built, 'the build failed (see above)');
      const [node, ...hcArgs] = healthcheck();
      assert.equal(node, 'node');
      const probe = () => run(process.execPath, hcArgs, { cwd: join(dir, 'data'), env: env() }).status;
      assert.notEqual(probe(), 0, 'the healthcheck fails while nothing listens');

      let output = '';
      proc = spawn(process.execPath, [join(dir, 'app/dist/src/main.js')], { cwd: join(dir, 'data'), env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout!.on('data', (d) => (output += d));
      proc.stderr!.on('data', (d) => (output += d));
      const deadline = Date.now() + 20_000;
      let ok = false;
      while (!ok && Date.now() < deadline && proc.exitCode === null) {
        ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
        if (!ok) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(ok, `the built router did not answer /healthz:\n${output}`);
      assert.equal(probe(), 0, 'the HEALTHCHECK command passes');

      proc.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => (proc!.exitCode !== null ? r(proc!.exitCode) : proc!.once('exit', (c) => r(c))));
      assert.equal(code, 0, `SIGTERM stops the router cleanly:\n${output}`);
      assert.notEqual(probe(), 0, 'the healthcheck fails once the router stopped');
    });
  });
});
