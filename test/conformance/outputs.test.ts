/**
 * The conformance kit: the behaviour every output type shares, checked for each registered type
 * through the whole router (memory queue) against the type's own fake (outputs/<type>/conformance.ts).
 * A type without a fixture fails here, so a new output cannot skip it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { outputTypes } from '../../outputs/index.ts';
import type { Behaviour, Conformance, Target } from '../../outputs/sdk/testkit/conformance.ts';
import { startTestRouter, type TestRouter } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { falcoEvent } from '../fixtures/events.ts';

const DELIVERY = { attempts: 4, initialdelay: '20ms', maxdelay: '100ms', timeout: '1s', ratelimit: 0, summarizeabove: 0, linger: '20ms' };

async function fixtureOf(type: string): Promise<Conformance | undefined> {
  const file = join(import.meta.dirname, '..', '..', 'outputs', type, 'conformance.ts');
  if (!existsSync(file)) return undefined;
  return ((await import(pathToFileURL(file).href)) as { conformance?: Conformance }).conformance;
}

interface Run {
  r: TestRouter;
  target: Target;
  get(path: string): Promise<string>;
}

async function withOutput(type: string, fixture: Conformance | Target, fn: (run: Run) => Promise<void>, delivery: Record<string, unknown> = {}): Promise<void> {
  const target = 'start' in fixture ? await fixture.start() : fixture;
  const instance = { name: 'out', type, ...target.settings, delivery: { ...DELIVERY, ...delivery } };
  const global = Object.entries(target.global ?? {}).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join('');
  const r = await startTestRouter(`${global}outputs:\n  - ${JSON.stringify(instance)}\n`);
  const get = async (path: string) => (await fetch(`${r.url}${path}`)).text();
  try {
    await fn({ r, target, get });
    // Whatever a test made the output do, no secret shows anywhere the router writes or serves.
    assertNoSecret(target.secrets, [await get('/api/v1/deadletters/out'), await get('/ready'), await get('/metrics'), ...r.logs]);
  } finally {
    await r.stop();
    await target.close();
  }
}

/** Whole secrets, and any piece of one long enough to be mistaken for none (a cut echo). */
function assertNoSecret(secrets: readonly string[], texts: readonly string[]): void {
  const pieces = secrets.flatMap((s) => (s.length <= 10 ? [s] : Array.from({ length: s.length - 9 }, (_, i) => s.slice(i, i + 10))));
  for (const piece of pieces) for (const text of texts) assert.ok(!text.includes(piece), `a secret leaked ("${piece}"): ${text.slice(0, 2000)}`);
}

const deadLetters = async (run: Run) => JSON.parse(await run.get('/api/v1/deadletters/out')) as { count: number; items: Array<{ reason: string; attempts: number; event: { output_fields: Record<string, unknown> } }> };
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

for (const t of outputTypes) {
  describe(`${t.type} conforms`, async () => {
    const fixture = await fixtureOf(t.type);
    test('has a conformance fixture (outputs/<type>/conformance.ts)', () => {
      assert.ok(fixture, `outputs/${t.type}/conformance.ts must export \`conformance\``);
    });
    if (!fixture) return;
    const can = (b: Behaviour) => (fixture.supports.includes(b) ? false : `${t.type} cannot show "${b}": ${fixture.unsupportedBecause ?? 'not supported'}`);

    test('delivers every accepted alert once', async () => {
      await withOutput(t.type, fixture, async ({ r, target }) => {
        for (let i = 0; i < 20; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
        await waitFor(() => target.delivered().length >= 20, 10_000, '20 deliveries');
        assert.deepEqual(sorted(target.delivered()), Array.from({ length: 20 }, (_, i) => i));
      });
    });

    test('retries a failure worth retrying, then delivers once', { skip: can('fail') }, async () => {
      await withOutput(t.type, fixture, async ({ r, target }) => {
        target.next('fail', 2);
        await r.post(falcoEvent(7));
        await waitFor(() => target.delivered().includes(7), 10_000, 'delivery after the failures');
        assert.deepEqual(target.delivered(), [7]);
        assert.ok(target.calls() >= 3, `at least 3 calls, got ${target.calls()}`);
        assert.equal(r.logs.filter((l) => l.includes('delivery attempt failed')).length, 2);
      });
    });

    test('dead-letters a refusal at once; no secret shows in logs, dead letters, /ready or /metrics, even echoed back (checked after every test)', { skip: can('refuse') }, async () => {
      await withOutput(t.type, fixture, async (run) => {
        const { r, target } = run;
        target.next('refuse', 1);
        await r.post(falcoEvent(3));
        await waitFor(async () => (await deadLetters(run)).count === 1, 10_000, 'a dead letter');
        const [dl] = (await deadLetters(run)).items;
        assert.equal(dl.attempts, 1, 'no retry of a refusal');
        assert.equal(dl.event.output_fields['test.n'], 3);
        assert.ok(dl.reason.length > 0);
        assert.deepEqual(target.delivered(), []);
        assert.ok(target.secrets.length > 0 || t.secrets.length === 0, 'a type with secret settings names their values');
      });
    });

    test('waits out rate limiting (Retry-After), without using up attempts', { skip: can('throttle') }, async () => {
      await withOutput(
        t.type,
        fixture,
        async ({ r, target }) => {
          target.next('throttle', 2);
          await r.post(falcoEvent(5));
          await waitFor(() => target.delivered().includes(5), 15_000, 'delivery after rate limiting');
          assert.deepEqual(target.delivered(), [5]);
          const limited = r.logs.filter((l) => l.includes('"reason":"rateLimited"'));
          assert.equal(limited.length, 2);
          assert.ok(limited.every((l) => l.includes('"attempt":1,')), 'rate limiting does not use up attempts');
          if (fixture.retryAfter) {
            const times = r.logs.filter((l) => l.includes('"reason":"rateLimited"')).map((l) => Date.parse(JSON.parse(l).time as string));
            assert.ok(times[1] - times[0] >= 900, `the second try waited Retry-After (${times[1] - times[0]} ms)`);
          }
        },
        { attempts: 2 },
      );
    });

    test('times out a call that hangs, and retries it', { skip: can('hang') }, async () => {
      await withOutput(
        t.type,
        fixture,
        async ({ r, target }) => {
          target.next('hang', 1);
          await r.post(falcoEvent(9));
          await waitFor(() => target.delivered().includes(9), 10_000, 'delivery after the timeout');
          assert.ok(r.logs.some((l) => l.includes('"reason":"timeout"')), 'the timeout is logged');
        },
        { timeout: '300ms' },
      );
    });

    test('partial success: only the refused alert of a batch is dead-lettered, the others delivered once', { skip: can('refuseMarker1') }, async () => {
      await withOutput(
        t.type,
        fixture,
        async (run) => {
          const { r, target } = run;
          target.next('refuseMarker1', 1);
          // Together, so they go out in one send.
          await Promise.all([0, 1, 2, 3, 4].map((n) => r.post(falcoEvent(n))));
          await waitFor(async () => (await deadLetters(run)).count === 1 && target.delivered().length >= 4, 10_000, '4 deliveries and a dead letter');
          assert.deepEqual(sorted(target.delivered()), [0, 2, 3, 4]);
          assert.equal((await deadLetters(run)).items[0].event.output_fields['test.n'], 1);
        },
        { linger: '300ms' },
      );
    });

    test('keeps alerts while its set-up fails, shows it in /ready and /metrics, and delivers once set-up passes', async (tc) => {
      const target = await fixture.start();
      if (!target.setup) {
        await target.close();
        return tc.skip(`${t.type} has no set-up that can fail`);
      }
      await target.setup.break();
      await withOutput(t.type, target, async (run) => {
        const { r } = run;
        assert.equal((await r.post(falcoEvent(11))).status, 200, 'still accepted: 200 means stored');
        type Ready = { outputs: Array<{ status: string; setupError?: { attempts: number; message: string } }> };
        await waitFor(async () => ((JSON.parse(await run.get('/ready')) as Ready).outputs[0].setupError?.attempts ?? 0) >= 2, 15_000, 'set-up retried, failure in /ready');
        const ready = JSON.parse(await run.get('/ready')) as Ready;
        assert.equal(ready.outputs[0].status, 'setting-up');
        assert.ok(ready.outputs[0].setupError!.message.length > 0);
        assert.match(await run.get('/metrics'), /falco_router_output_up\{output="out",type="\w+"\} 0/);
        assert.match(await run.get('/metrics'), /falco_router_output_setup_failures_total\{output="out",type="\w+"\} [1-9]/);
        assert.deepEqual(target.delivered(), []);
        await target.setup!.fix();
        await waitFor(() => target.delivered().includes(11), 20_000, 'delivery once set-up passes');
        assert.match(await run.get('/metrics'), /falco_router_output_up\{output="out",type="\w+"\} 1/);
      });
    });
  });
}
