/**
 * A local HTTP server that records every request and answers from a script: a list of replies
 * used in order (the last one repeats), so a test can say "503 three times, then 200". Fakes of
 * HTTP services (Slack) build on it with `answer`, which replies before the script is consulted.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface Reply {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (to provoke timeouts). */
  delayMs?: number;
  /** Append the request (method, URL, headers, body) to the body, as servers that echo it in errors do. */
  echo?: boolean;
}

export interface Recorded {
  /** Arrival time, epoch ms. */
  at: number;
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  status: number;
  /** False while a delayed reply has not gone out (or the client gave up first). */
  answered: boolean;
}

export interface SinkOptions {
  /** Path of the URL the sink reports (default `/hook`); any path is answered unless `answer` says otherwise. */
  path?: string;
  /** A reply that takes precedence over the script (a service's own checks); undefined lets the script answer. */
  answer?: (req: { method: string; url: string; body: string }) => Reply | undefined;
  /** Headers on every reply, under the reply's own. */
  headers?: Record<string, string>;
}

export interface HttpSink {
  url: string;
  port: number;
  requests: Recorded[];
  /** Bodies of requests answered with 2xx (a reply still delayed, or cut off, does not count). */
  delivered(): string[];
  script(replies: Reply[]): void;
  close(): Promise<void>;
}

export async function startHttpSink(replies: Reply[] = [{ status: 200 }], opts: SinkOptions = {}): Promise<HttpSink> {
  let script = [...replies];
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const own = opts.answer?.({ method: req.method ?? '', url: req.url ?? '', body });
      const reply = own ?? (script.length > 1 ? script.shift()! : script[0]);
      const recorded: Recorded = { at: Date.now(), method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, status: reply.status, answered: false };
      requests.push(recorded);
      const send = () => {
        if (res.destroyed) return;
        recorded.answered = true;
        res.writeHead(reply.status, { ...(opts.headers ?? {}), ...(reply.headers ?? {}) });
        const echoed = reply.echo ? ` (request: ${req.method} ${req.url} ${JSON.stringify(req.headers)} ${body})` : '';
        res.end((reply.body ?? '') + echoed);
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const actual = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${actual}${opts.path ?? '/hook'}`,
    port: actual,
    requests,
    delivered: () => requests.filter((r) => r.answered && r.status >= 200 && r.status < 300).map((r) => r.body),
    script: (r) => {
      script = [...r];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
