/**
 * An adapter on its own, outside the router: its settings validated by its real schema, deps that
 * record what it logs and counts, and a SendContext that records what it reports. For tests of a
 * payload or a protocol; delivery behaviour is tested through the router (conformance kit).
 */
import type { z } from 'zod';
import type { Output, OutputDeps, OutputType, SendContext } from '../contract.ts';
import type { OutputError } from '../../../src/errors.ts';
import type { StoredEvent } from '../../../src/event/stored-event.ts';

export const NO_TLS = { certfile: '', keyfile: '', cacertfile: '', extracafile: '' };

export interface TestDeps extends OutputDeps {
  /** Every log line as `level: message {fields}`. */
  lines: string[];
  counts: Map<string, number>;
}

export function testDeps(over: Partial<OutputDeps> = {}): TestDeps {
  const lines: string[] = [];
  const counts = new Map<string, number>();
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => lines.push(`${level}: ${msg} ${JSON.stringify(obj)}`);
  return {
    name: 'test',
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    debug: false,
    tls: NO_TLS,
    concurrency: 1,
    count: (stat, n = 1) => counts.set(stat, (counts.get(stat) ?? 0) + n),
    lines,
    counts,
    ...over,
  };
}

export interface RecordingContext extends SendContext {
  reported: { delivered: StoredEvent[]; failed: Array<{ events: StoredEvent[]; error: OutputError }> };
}

export function sendContext(timeoutMs = 5000, attempt = 1): RecordingContext {
  const reported: RecordingContext['reported'] = { delivered: [], failed: [] };
  return {
    signal: AbortSignal.timeout(timeoutMs),
    attempt,
    delivered: (events) => reported.delivered.push(...events),
    failed: (events, error) => events.length > 0 && reported.failed.push({ events: [...events], error }),
    reported,
  };
}

/** Validates settings with the type's schema, creates the adapter and runs its set-up; closed by `t.after`. */
export async function createAdapter<S extends z.ZodObject>(
  t: { after(fn: () => unknown): void },
  type: OutputType<S>,
  settings: Record<string, unknown>,
  over: Partial<OutputDeps> = {},
): Promise<{ out: Output; deps: TestDeps }> {
  const deps = testDeps(over);
  const out = type.create(type.schema.parse(settings), deps);
  t.after(() => out.close?.());
  await out.setup?.(AbortSignal.timeout(30_000));
  return { out, deps };
}
