// Run by `npm test` before the tests: makes sure what they need outside node_modules is there,
// so a fresh Debian/Ubuntu machine needs nothing but Node and `npm ci` first. Missing Debian
// packages are installed when this user may (root, or password-less sudo); otherwise one line
// says what to install and the run stops before ~150 tests fail for the same reason.
// Plain Node, no dependencies: it must run before and without node_modules.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

// What the tests run from the machine. `test` is how this script finds it (the path the test
// uses, or a command looked up on PATH); `apt` and `brew` name the package that provides it.
const NEEDS = [
  // test/helpers/redis.ts: a private redis-server per test file.
  { name: 'redis-server', test: { onPath: 'redis-server' }, apt: 'redis-server', brew: 'redis' },
  // test/helpers/certs.ts runs /usr/bin/openssl for the TLS test certificates.
  { name: 'openssl', test: { file: '/usr/bin/openssl' }, apt: 'openssl', brew: 'openssl' },
];

const fail = (line) => {
  console.error(line);
  process.exit(1);
};

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

const present = (need) => (need.test.file ? existsSync(need.test.file) : onPath(need.test.onPath));
const list = (words) => (words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`);

// 1. node_modules matches package.json: every dependency there, at its pinned version.
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const stale = [];
for (const [name, spec] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
  const file = join(ROOT, 'node_modules', name, 'package.json');
  if (!existsSync(file)) stale.push(`${name} missing`);
  else if (/^\d+\.\d+\.\d+$/.test(spec) && JSON.parse(readFileSync(file, 'utf8')).version !== spec) stale.push(`${name} not ${spec}`);
}
if (stale.length > 0) {
  const what = stale.length === Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }).length ? 'node_modules is not installed' : `node_modules is out of date (${list(stale.slice(0, 3))}${stale.length > 3 ? ', ...' : ''})`;
  fail(`npm test: ${what}: run \`npm ci\` first`);
}

// 2. The machine's commands.
const missing = NEEDS.filter((n) => !present(n));
if (missing.length === 0) process.exit(0);

const names = missing.map((n) => n.name);
const aptPkgs = [...new Set(missing.map((n) => n.apt))];
const advice =
  `npm test needs ${list(names)}: install ${names.length > 1 ? 'them' : 'it'} ` +
  `(Debian/Ubuntu: sudo apt-get install -y ${aptPkgs.join(' ')}; macOS: brew install ${[...new Set(missing.map((n) => n.brew))].join(' ')})`;

const isRoot = process.getuid?.() === 0;
const quiet = { stdio: 'ignore' };
const canInstall = onPath('apt-get') && (isRoot || (onPath('sudo') && spawnSync('sudo', ['-n', 'true'], quiet).status === 0));
if (!canInstall) fail(advice);

console.log(`npm test: installing ${list(aptPkgs)} with apt-get (Debian packages the tests run)`);
const apt = (...args) => {
  const cmd = [...(isRoot ? [] : ['sudo', '-n']), 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    // apt's own words first: they say why (no network, a held lock, ...).
    process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `${r.error.message}\n` : ''}`);
    fail(`npm test: \`apt-get ${args.join(' ')}\` failed (above); ${advice}`);
  }
};
apt('update', '-qq');
apt('install', '-y', '-qq', '--no-install-recommends', ...aptPkgs);
const still = NEEDS.filter((n) => !present(n));
if (still.length > 0) fail(`npm test: apt-get installed ${list(aptPkgs)} but ${list(still.map((n) => n.name))} is still not found; ${advice}`);
