/** CLI entry: `falco-router [-c FILE]`, `falco-router check-config [-c FILE]`, `falco-router route-test [-c FILE] [--json] < alert.json`. */
import { parseArgs } from 'node:util';
import { existsSync, readFileSync, watch } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { loadConfig, maskedOutputs, shownExclude, ConfigError } from './config/load.ts';
import { outputTypes, defaultOutput } from '../outputs/index.ts';
import { createLogger } from './log.ts';
import { startRouter } from './app.ts';
import { routeTest } from './routing/route-test.ts';

const USAGE = `usage: falco-router [check-config | route-test] [-c FILE | --config-file FILE] [--json] [-v] [-h]

  (no command)   start the router in the foreground, logging JSON to stdout
  check-config   validate the config file plus environment and print the output instances
  route-test     read one alert (JSON) from stdin and show, for each output instance, whether it
                 would be sent and why not (minimumpriority, match, exclude); --json for machines
  -c, --config-file FILE   YAML config (falcosidekick's format works too); env vars override it
  -v, --version            print the version
`;

const COMMANDS = ['check-config', 'route-test'];

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        'config-file': { type: 'string', short: 'c' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.values.version) {
    // src/main.ts (tsx) and dist/src/main.js (built) sit at different depths below package.json.
    const pkgUrl = ['../package.json', '../../package.json'].map((p) => new URL(p, import.meta.url)).find((u) => existsSync(u))!;
    const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const command = args.positionals[0];
  if (command !== undefined && !COMMANDS.includes(command)) {
    process.stderr.write(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }

  let cfg;
  try {
    cfg = loadConfig({ file: args.values['config-file'], types: outputTypes, defaultOutput });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (command === 'check-config') {
    const shown = { queue: cfg.queue.driver, exclude: shownExclude(cfg.exclude), outputs: maskedOutputs(cfg, outputTypes), warnings: cfg.warnings };
    process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
    return 0;
  }
  if (command === 'route-test') {
    if (process.stdin.isTTY) process.stderr.write('reading one alert (JSON) from stdin; end it with Ctrl-D\n');
    for (const w of cfg.warnings) process.stderr.write(`warning: ${w}\n`);
    const r = await routeTest(await readStdin(), cfg, { json: args.values.json });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    return r.code;
  }

  const logger = createLogger(cfg.debug ? 'debug' : cfg.log.level);
  for (const w of cfg.warnings) logger.warn(w);
  if (cfg.usingDefaultOutput) logger.info({ output: defaultOutput }, 'no output configured: running the embedded default output');
  // Node's default for SIGHUP is to exit. One that arrives while the router starts (a ConfigMap
  // update while Redis is still coming up) is kept and acted on once the router runs.
  let hupWhileStarting = false;
  const earlyHup = () => {
    hupWhileStarting = true;
  };
  process.on('SIGHUP', earlyHup);
  logger.info({ queue: cfg.queue.driver, outputs: cfg.outputs.length }, 'starting');
  const router = await startRouter(cfg, outputTypes, logger).catch((err: Error) => {
    logger.fatal({ err: err.message }, `cannot start: ${err.message}`);
    return undefined;
  });
  if (!router) return 1;

  const file = args.values['config-file'];
  let watcher: ConfigWatcher | undefined;
  const reload = async (why: string) => {
    // This reload reads the file as it is now: the watcher must not reload the same content again
    // (a SIGHUP sent after editing the file would otherwise reload, and refuse or count, twice).
    watcher?.sync();
    let next;
    try {
      next = loadConfig({ file, types: outputTypes, defaultOutput });
      const r = await router.reload(next);
      router.metrics.reloads.inc({ result: 'ok' });
      for (const w of next.warnings) logger.warn(w);
      if (r.restartNeeded.length > 0) logger.warn({ keys: r.restartNeeded }, `reload (${why}): changes to ${r.restartNeeded.join(', ')} take effect after a restart`);
      logger.info({ added: r.added, removed: r.removed, changed: r.changed }, `config reloaded (${why})`);
    } catch (err) {
      router.metrics.reloads.inc({ result: 'error' });
      const detail = err instanceof ConfigError ? err.problems : [(err as Error).message];
      logger.error({ problems: detail }, `config reload (${why}) refused, the running config stays: ${detail.join('; ')}`);
    }
  };
  // Reloads run one at a time; a change during one triggers one more afterwards.
  let reloading: Promise<void> = Promise.resolve();
  const queueReload = (why: string) => {
    reloading = reloading.then(() => reload(why));
  };
  process.off('SIGHUP', earlyHup);
  process.on('SIGHUP', () => queueReload('SIGHUP'));
  if (hupWhileStarting) queueReload('SIGHUP during startup');
  if (file) watcher = watchConfig(file, () => queueReload('file changed'));

  return new Promise<number>((resolve) => {
    const onSignal = (sig: string) => {
      logger.info(`${sig} received: stopping (grace period ${cfg.shutdown.graceperiod} ms)`);
      // A backend that never answers must not keep the process alive past the grace period.
      setTimeout(() => {
        logger.error('stop did not finish in time; exiting');
        // process.exit() would wait for a thread stuck in a call that never returns (a write to a
        // hung mount): the process ends itself instead, once the line is out.
        setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);
      }, cfg.shutdown.graceperiod + 10_000).unref();
      router.stop().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (err: Error) => {
          logger.error({ err: err.message }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}

interface ConfigWatcher {
  /** Records the file's current content as seen, so that only later changes call onChange. */
  sync(): void;
}

/** Calls onChange once things settle after the file (or the directory entry, for ConfigMap symlink swaps) changes. */
function watchConfig(file: string, onChange: () => void): ConfigWatcher {
  let timer: NodeJS.Timeout | undefined;
  let last = safeRead(file);
  const check = () => {
    const now = safeRead(file);
    if (now !== last) {
      last = now;
      onChange();
    }
  };
  try {
    const base = basename(file);
    watch(dirname(resolvePath(file)), { persistent: false }, (_event, name) => {
      // The file itself, or Kubernetes' ..data symlink swap of a mounted ConfigMap.
      if (name !== null && name !== base && !String(name).startsWith('..')) return;
      clearTimeout(timer);
      timer = setTimeout(check, 300);
    });
  } catch {
    /* no file watching here: SIGHUP still works */
  }
  return {
    sync: () => {
      last = safeRead(file);
    },
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

main().then(
  (code) => {
    process.exitCode = code;
    // Let pino flush, then leave even if a client library keeps a handle open.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: Error) => {
    process.stderr.write(`fatal: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
