/**
 * Keeps slow, idle and too many clients from taking the ingest server down. Node's HTTP server
 * (and fastify's defaults) never close a client that sends its headers a byte a second, nor cap
 * connections: 1,100 such sockets exhausted a 1,024 open-files limit, after which every alert POST
 * failed and /ready stopped answering. Here: headers and whole requests have deadlines (checked
 * every second), idle keep-alive connections close, and at the bound the oldest idle connection
 * makes room for the new one (a new one is refused only when none is idle), so probes and Falco
 * still get in. Falco's http_output waits 2 s for an answer, so the deadlines only hit clients
 * that are broken or hostile.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

export interface ConnectionLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  /** 0: the open-files limit less a reserve for outputs, Redis and files (Linux), else 1,000. */
  maxConnections: number;
}

/** Reserved below the open-files limit for everything but ingest connections. */
const FD_RESERVE = 128;
const LOG_EVERY_MS = 60_000;

/** The server options fastify passes on to Node's HTTP server. */
export function timeoutOptions(l: ConnectionLimits) {
  return {
    keepAliveTimeout: l.idleTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    connectionTimeout: l.requestTimeoutMs + l.idleTimeoutMs,
    // Node checks header and request deadlines every connectionsCheckingInterval (30 s by default).
    node: { headersTimeout: l.headersTimeoutMs, connectionsCheckingInterval: 1000 },
  };
}

export function resolveMaxConnections(configured: number): number {
  if (configured > 0) return configured;
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (soft) return Math.max(64, Number(soft) - FD_RESERVE);
  } catch {
    /* not Linux */
  }
  return 1000;
}

/** At most `max` connections; at the bound the longest-idle one is closed to let a new one in. */
export function boundConnections(server: Server, max: number, logger: Logger): void {
  /** Open sockets, in the order they last went idle (Map keeps insertion order); busy ones are absent. */
  const idle = new Map<Socket, true>();
  let open = 0;
  let evicted = 0;
  let refused = 0;
  let loggedAt = 0;
  const report = () => {
    if (Date.now() - loggedAt < LOG_EVERY_MS) return;
    loggedAt = Date.now();
    logger.warn({ max, evicted, refused }, `ingest connections at the bound (${max}): closed ${evicted} idle and refused ${refused} new connection(s) since the last report`);
    evicted = refused = 0;
  };
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      const oldest = idle.keys().next().value as Socket | undefined;
      if (oldest) {
        idle.delete(oldest);
        oldest.destroy();
        evicted++;
      } else {
        socket.destroy();
        refused++;
        report();
        return;
      }
      report();
    }
    open++;
    idle.set(socket, true);
    socket.once('close', () => {
      open--;
      idle.delete(socket);
    });
  });
  server.on('request', (req, res) => {
    // Over TLS a request comes on the TLS socket, whose TCP socket (_parent, set by Node's TLS
    // server) is the one counted above: track that one, or busy connections would look idle.
    const socket = ((req.socket as Socket & { _parent?: Socket })._parent ?? req.socket) as Socket;
    idle.delete(socket);
    res.once('finish', () => {
      if (!socket.destroyed) idle.set(socket, true);
    });
  });
}
