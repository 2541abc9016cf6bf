import { startTestRouter, tempDir } from '../test/helpers/router.ts';
import { startFakeSlack } from '../test/fakes/slack.ts';
import { falcoEvent } from '../test/fixtures/events.ts';
import { waitFor } from '../test/helpers/wait.ts';
const mode = process.argv[2] ?? 'concurrent';
const N = Number(process.argv[3] ?? 2000);
const fake = await startFakeSlack();
const r = await startTestRouter(`
outputs:
  - { name: team-a, type: slack, webhookurl: "${fake.url}", delivery: { ratelimit: 50, summarizeabove: 100 } }
`);
const t0 = Date.now();
if (mode === 'sequential') { for (let i = 0; i < N; i++) await r.post(falcoEvent(i)); }
else { let next = 0; await Promise.all(Array.from({ length: 20 }, async () => { while (next < N) { const i = next++; await r.post(falcoEvent(i)); } })); }
const tIngest = Date.now() - t0;
const count = () => fake.messages().reduce((n, m) => { const s = m.attachments.map((a: any) => /^(\d+) more alert/.exec(a.text)?.[1]).filter(Boolean); return n + (s.length ? s.reduce((x: number, y: string) => x + Number(y), 0) : 1); }, 0);
try { await waitFor(() => count() >= N, 60_000, 'all'); } catch (e) { console.log(String(e)); }
const msgs = fake.messages();
const summaries = msgs.filter((m) => m.text?.startsWith('Flood control'));
console.log({ mode, tIngest, total: Date.now() - t0, messages: msgs.length, individual: msgs.length - summaries.length, summaries: summaries.length, counted: count(), sizes: summaries.slice(0, 10).map((m) => m.attachments[0].text) });
await r.stop(); await fake.close();
