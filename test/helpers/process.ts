/** The router as a real process (`node --import tsx src/main.ts …`), for signals, file watching and the CLI. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { waitFor } from './wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface RouterProcess {
  url: string;
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines so far, parsed (non-JSON lines skipped). */
  logs(): Array<Record<string, unknown>>;
  /** SIGTERM, then the exit code (SIGKILL and a failure after 30 s). */
  stop(): Promise<number | null>;
}

/** Starts the router and waits until it answers /healthz. */
export async function spawnRouter(configFile: string, env: Record<string, string> = {}): Promise<RouterProcess> {
  const p = await launchRouter(configFile, env);
  await p.listening();
  return p;
}

/** Starts the router without waiting for it (for what happens while it starts). */
export async function launchRouter(configFile: string, env: Record<string, string> = {}): Promise<RouterProcess & { listening(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '-c', configFile], {
    cwd: ROOT,
    env: { ...process.env, LISTENPORT: String(port), LISTENADDRESS: '127.0.0.1', SHUTDOWN_GRACEPERIOD: '1s', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  child.stdout!.on('data', (d: Buffer) => chunks.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => chunks.push(d.toString()));
  const output = () => chunks.join('');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    url,
    listening: () =>
      waitFor(
        async () => {
          if (gone()) throw new Error(`router exited: ${output()}`);
          return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
        },
        20_000,
        'the router process to listen',
      ),
    child,
    output,
    logs: () =>
      output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    async stop() {
      if (!gone()) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`router did not exit; its output:\n${output().slice(-3000)}`));
        }, 30_000);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `src/main.ts` with the given arguments to completion; `input`, when given, is its stdin. */
export function runCli(args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not exit within 30 s; stderr: ${stderr}`));
    }, 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
