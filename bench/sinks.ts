/**
 * Local sinks that accept webhook, Slack, CloudWatch Logs (JSON 1.1) and SNS (Query/XML) traffic
 * instantly, run as their own process so they do not share a CPU loop with the load generator.
 * They count every event by its marker and keep the first time each marker arrived.
 *   argv[2]: port. GET /stats, GET /times/<output>, POST /down/<output>, POST /up/<output>.
 */
import { createServer } from 'node:http';
import { MARKER } from './events.ts';

interface Seen {
  deliveries: number;
  first: Map<number, number>;
}
const seen = new Map<string, Seen>();
const down = new Set<string>();
const now = () => performance.timeOrigin + performance.now();

function record(output: string, text: string): void {
  let s = seen.get(output);
  if (!s) seen.set(output, (s = { deliveries: 0, first: new Map() }));
  const t = now();
  // Slack repeats the output in `fallback` and `text`: count each marker once per message.
  for (const n of new Set([...text.matchAll(MARKER)].map((m) => Number(m[1])))) {
    s.deliveries++;
    if (!s.first.has(n)) s.first.set(n, t);
  }
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const url = req.url ?? '/';
    if (req.method === 'GET' && url === '/stats') {
      const out: Record<string, { deliveries: number; unique: number }> = {};
      for (const [k, v] of seen) out[k] = { deliveries: v.deliveries, unique: v.first.size };
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(out));
    }
    if (req.method === 'GET' && url.startsWith('/times/')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify([...(seen.get(url.slice(7))?.first ?? new Map())]));
    }
    const ctl = /^\/(down|up)\/(.+)$/.exec(url);
    if (ctl) {
      if (ctl[1] === 'down') down.add(ctl[2]);
      else down.delete(ctl[2]);
      res.writeHead(200);
      return res.end();
    }
    const output = url.split('/')[1] || 'unknown';
    if (down.has(output)) {
      res.writeHead(503);
      return res.end('down');
    }
    const target = String(req.headers['x-amz-target'] ?? '');
    if (target.startsWith('Logs_20140328.')) {
      if (target.endsWith('PutLogEvents')) {
        const parsed = JSON.parse(body) as { logEvents: Array<{ message: string }> };
        for (const e of parsed.logEvents) record(output, e.message);
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        return res.end('{"nextSequenceToken":"1"}');
      }
      if (target.endsWith('DescribeLogStreams')) {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        return res.end('{"logStreams":[]}');
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      return res.end('{}');
    }
    if (body.startsWith('Action=') || body.includes('&Action=')) {
      const form = new URLSearchParams(body);
      const action = form.get('Action');
      if (action === 'Publish') {
        record(output, form.get('Message') ?? '');
        res.writeHead(200, { 'content-type': 'text/xml' });
        return res.end('<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>');
      }
      if (action === 'PublishBatch') {
        const ids: string[] = [];
        for (const [k, v] of form) {
          if (/^PublishBatchRequestEntries\.member\.\d+\.Message$/.test(k)) record(output, v);
          const id = /^PublishBatchRequestEntries\.member\.(\d+)\.Id$/.exec(k);
          if (id) ids.push(v);
        }
        res.writeHead(200, { 'content-type': 'text/xml' });
        return res.end(`<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>${ids.map((i) => `<member><Id>${i}</Id><MessageId>m${i}</MessageId></member>`).join('')}</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>`);
      }
      if (action === 'GetCallerIdentity') {
        res.writeHead(200, { 'content-type': 'text/xml' });
        return res.end('<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/bench</Arn><UserId>U</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>');
      }
    }
    record(output, body);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('ready\n'));
