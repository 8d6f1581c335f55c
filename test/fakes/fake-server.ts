/**
 * The core of every fake provider: a Hono app served on 127.0.0.1 by @hono/node-server that
 * records each request and answers from a script (a FIFO queue), falling back to the provider's
 * success answer. Providers add their routes and auth checks on top (see waba.ts, telegram.ts…).
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve, type HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';

/** One request as the fake saw it. */
export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. `/v23.0/106540352242922/messages`. */
  path: string;
  /** Lowercased header names. */
  headers: Record<string, string>;
  /** Parsed JSON body, or the raw text when it is not JSON; undefined with `recordBodies: false`. */
  body: unknown;
  /** Raw body text; `''` with `recordBodies: false`. */
  rawBody: string;
  /** Date.now() when the request arrived. */
  at: number;
  /** Status the fake answered with (set once the answer is chosen). */
  status?: number;
  /** JSON body the fake answered with, when it was JSON (e.g. to read the generated message id). */
  response?: unknown;
}

/** A scripted answer. With neither `body` nor `rawBody` and a 2xx (or no) status, the provider's success body is used. */
export interface ScriptedReply {
  /** Default 200. */
  status?: number;
  headers?: Record<string, string>;
  /** Serialised as JSON. */
  body?: unknown;
  /** Sent verbatim (malformed JSON, HTML…); content-type defaults to application/json. */
  rawBody?: string;
  /** Wait this long before answering; replaces the server's `latencyMs` for this request. */
  delayMs?: number;
  /** Destroy the connection instead of answering. */
  drop?: boolean;
}

export type ReplyFn = (req: RecordedRequest, params: Record<string, string>) => ScriptedReply;

export interface FakeServerOptions {
  /** Fixed delay before every answer (benchmarks). Default 0. */
  latencyMs?: number;
  /** Keep bodies in `requests`. Default true; turn off for speed. */
  recordBodies?: boolean;
  /** Keep `requests` at all. Default true; `requestCount` is always kept. */
  recordRequests?: boolean;
}

export interface FakeServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Recorded requests, oldest first (all routes, including rejected and unknown ones). */
  readonly requests: RecordedRequest[];
  /** Requests received since start or the last reset(), recorded or not. */
  readonly requestCount: number;
  /** Queue answers for the next requests that pass the provider's checks, in order. */
  script(replies: ScriptedReply | ScriptedReply[]): void;
  /** Scripted answers not yet used. */
  readonly pending: number;
  /** Replace the answer used when the script is empty (null: back to the provider's success). */
  setDefault(reply: ScriptedReply | ReplyFn | null): void;
  /** Forget recorded requests, the script and any default. */
  reset(): void;
  /** Stop listening and drop open connections (pending delayed answers are abandoned). */
  close(): Promise<void>;
}

/** What a provider fake plugs into the core. */
export interface FakeProvider {
  /** Registers routes; each calls `handle(c, success, check?)`. */
  routes(app: Hono<{ Bindings: HttpBindings }>, handle: HandleFn): void;
}

export type HandleFn = (
  c: Context<{ Bindings: HttpBindings }>,
  /** Builds the default success answer for this request. */
  success: ReplyFn,
  /** Returns an answer to short-circuit (auth failure, invalid body) before the script is used. */
  check?: (req: RecordedRequest) => ScriptedReply | undefined,
) => Promise<Response>;

export async function startFakeServer(provider: FakeProvider, options: FakeServerOptions = {}): Promise<FakeServer> {
  const { latencyMs = 0, recordBodies = true, recordRequests = true } = options;
  const requests: RecordedRequest[] = [];
  const queue: ScriptedReply[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let fallback: ScriptedReply | ReplyFn | null = null;
  let count = 0;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const handle: HandleFn = async (c, success, check) => {
    count++;
    const rawBody = await c.req.text();
    const headers: Record<string, string> = {};
    c.req.raw.headers.forEach((value, key) => {
      headers[key] = value;
    });
    const url = new URL(c.req.url);
    const req: RecordedRequest = {
      method: c.req.method,
      path: url.pathname + url.search,
      headers,
      body: parseBody(rawBody),
      rawBody,
      at: Date.now(),
    };
    // The handlers see the full request; what is kept is trimmed as asked.
    if (recordRequests) requests.push(recordBodies ? req : { ...req, body: undefined, rawBody: '' });
    const kept = recordRequests ? requests[requests.length - 1]! : undefined;

    const params = c.req.param() as Record<string, string>;
    let reply = check?.(req);
    if (!reply) {
      const scripted = queue.shift() ?? (typeof fallback === 'function' ? fallback(req, params) : fallback);
      reply = scripted ?? success(req, params);
      const status = reply.status ?? 200;
      if (reply.body === undefined && reply.rawBody === undefined && status >= 200 && status < 300) {
        reply = { ...reply, body: success(req, params).body, status };
      }
    }

    const delay = reply.delayMs ?? latencyMs;
    if (delay > 0) await sleep(delay);

    if (reply.drop) {
      c.env.incoming.socket.destroy();
      if (kept) kept.status = 0;
      return new Response(null, { status: 500 });
    }
    const status = reply.status ?? 200;
    if (kept) {
      kept.status = status;
      if (recordBodies && reply.body !== undefined) kept.response = reply.body;
    }
    const outHeaders = new Headers(reply.headers);
    let payload: string | null = null;
    if (reply.rawBody !== undefined) payload = reply.rawBody;
    else if (reply.body !== undefined) payload = JSON.stringify(reply.body);
    if (payload !== null && !outHeaders.has('content-type')) outHeaders.set('content-type', 'application/json');
    // 204/304 may not carry a body.
    return new Response(status === 204 || status === 304 ? null : payload, { status, headers: outHeaders });
  };

  const app = new Hono<{ Bindings: HttpBindings }>();
  provider.routes(app, handle);
  app.notFound((c) =>
    handle(c, () => ({ status: 404, body: { error: 'no such route in fake' } }), () => ({
      status: 404,
      body: { error: 'no such route in fake' },
    })),
  );

  const { server, port } = await new Promise<{ server: Server; port: number }>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
      resolve({ server: s as Server, port: (info as AddressInfo).port }),
    ) as Server;
    s.once('error', reject);
  });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get requestCount() {
      return count;
    },
    script(replies) {
      queue.push(...(Array.isArray(replies) ? replies : [replies]));
    },
    get pending() {
      return queue.length;
    },
    setDefault(reply) {
      fallback = reply;
    },
    reset() {
      requests.length = 0;
      queue.length = 0;
      fallback = null;
      count = 0;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function parseBody(raw: string): unknown {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** A random uppercase hex string of `bytes` bytes. */
export function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

/** A URL on 127.0.0.1 where nothing listens (connection refused), for network-error tests. */
export async function unusedUrl(): Promise<string> {
  const { createServer } = await import('node:net');
  const port = await new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  return `http://127.0.0.1:${port}`;
}
