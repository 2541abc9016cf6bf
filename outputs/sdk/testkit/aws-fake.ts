/**
 * Shared plumbing for the local AWS fakes: a loopback HTTP server, the SigV4 access key of each
 * request (so tests can see which credentials the SDK signed with), and XML helpers for the
 * Query-protocol services (SNS, STS).
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';

export interface FakeRequest {
  headers: IncomingMessage['headers'];
  body: string;
  /** The access key id from the SigV4 Authorization header ('' when unsigned). */
  accessKeyId: string;
  /** The x-amz-security-token header (temporary credentials), if any. */
  sessionToken?: string;
}

export interface FakeServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export type Handler = (req: FakeRequest, res: ServerResponse) => void | Promise<void>;

export async function startFakeServer(handler: Handler): Promise<FakeServer> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const auth = String(req.headers.authorization ?? '');
      const m = /Credential=([^/,\s]+)\//.exec(auth);
      const token = req.headers['x-amz-security-token'];
      const fr: FakeRequest = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        accessKeyId: m ? m[1] : '',
        sessionToken: typeof token === 'string' ? token : undefined,
      };
      Promise.resolve(handler(fr, res)).catch((err) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String((err as Error)?.stack ?? err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** A Query-protocol error reply, as SNS and STS send it. */
export function queryError(res: ServerResponse, status: number, code: string, message: string, xmlns: string, type = status >= 500 ? 'Receiver' : 'Sender'): void {
  res.writeHead(status, { 'content-type': 'text/xml' });
  res.end(
    `<ErrorResponse xmlns="${xmlns}"><Error><Type>${type}</Type><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
  );
}

/** A Query-protocol success reply: `<{Action}Response><{Action}Result>…</…Result><ResponseMetadata>…`. */
export function queryResult(res: ServerResponse, action: string, inner: string, xmlns: string): void {
  res.writeHead(200, { 'content-type': 'text/xml' });
  res.end(
    `<${action}Response xmlns="${xmlns}"><${action}Result>${inner}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
  );
}

/** A scripted failure budget: "let `skip` calls through, then fail the next `n`". */
export class Budget {
  #n = 0;
  #skip = 0;
  set(n: number, skip = 0): void {
    this.#n = n;
    this.#skip = skip;
  }
  take(): boolean {
    if (this.#n <= 0) return false;
    if (this.#skip > 0) {
      this.#skip--;
      return false;
    }
    this.#n--;
    return true;
  }
}

/**
 * Keeps the developer's own AWS setup (profile, keys, region, endpoints) out of a test process, so
 * the SDK sees only what a test configures.
 */
export function isolateAwsEnv(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/aws-credentials';
  for (const k of Object.keys(process.env)) {
    if (/^AWS_(REGION|DEFAULT_REGION|PROFILE|ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|ENDPOINT_URL\w*)$/.test(k)) delete process.env[k];
  }
}
