import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

/**
 * A `fetch` for the provider senders built on node:http(s) with keep-alive pools. It covers what
 * the senders use (method, headers, a string/bytes body, `signal`, `redirect: 'manual'`) and
 * answers a standard `Response`; anything else goes to the platform's fetch. Why: undici's fetch
 * spends ~3× the CPU per request of node:http, and the delivery worker is bound by exactly that.
 * Redirects are never followed (a 3xx comes back as is), which is what the senders ask for.
 */
export interface NodeFetchOptions {
  /** Open connections per origin. Default 256. */
  maxSockets?: number;
  /** The fetch for requests this one does not cover (e.g. ReadableStream bodies). */
  fallback?: typeof fetch;
}

/** Statuses whose Response has no body (the Fetch standard's null body statuses, less 101/103 which never get here). */
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

export function createNodeFetch({ maxSockets = 256, fallback = globalThis.fetch }: NodeFetchOptions = {}): typeof fetch {
  // Idle pooled sockets close after 4 s (or the server's shorter `Keep-Alive: timeout`), before
  // common 5 s server timeouts: reusing a socket the server is closing fails the request.
  const agentOptions = { keepAlive: true, maxSockets, timeout: 4_000 };
  const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };

  return function nodeFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const body = init.body;
    const simpleBody = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
    if (input instanceof Request || !simpleBody || (init.redirect !== undefined && init.redirect !== 'manual')) {
      return fallback(input, init);
    }
    const url = new URL(String(input));
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return fallback(input, init);
    const signal = init.signal ?? undefined;
    if (signal?.aborted) return Promise.reject(signal.reason ?? new DOMException('aborted', 'AbortError'));

    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    if (body !== undefined && body !== null) headers['content-length'] = String(Buffer.byteLength(body));

    return new Promise<Response>((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, { method: init.method ?? 'GET', headers, agent: agents[url.protocol as 'http:' | 'https:'] }, (res) => {
        // This runs in an event callback, where a throw would not reject the promise but take the
        // process down: a status a Response cannot carry (600, or 1xx here) or a header it refuses
        // from a provider or a customer's callback URL fails this request, as fetch does.
        try {
          const out = new Headers();
          const raw = res.rawHeaders;
          for (let i = 0; i + 1 < raw.length; i += 2) out.append(raw[i]!, raw[i + 1]!);
          const status = res.statusCode ?? 502;
          // Checked here, not left to the Response constructor: under @hono/node-server the
          // global Response is its lightweight one, which takes any status.
          if (status < 200 || status > 599) throw new RangeError(`HTTP status ${status} is outside 200-599`);
          const noBody = NULL_BODY_STATUSES.has(status) || init.method === 'HEAD';
          if (noBody) res.resume();
          resolve(new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: out }));
        } catch (err) {
          res.destroy();
          reject(new TypeError('fetch failed', { cause: err }));
        }
      });
      // As fetch does: an abort rejects with the signal's reason; other failures are TypeError('fetch failed', {cause}).
      const onAbort = () => {
        const reason: unknown = signal?.reason ?? new DOMException('aborted', 'AbortError');
        reject(reason);
        req.destroy(reason instanceof Error ? reason : undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      req.once('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
      req.end(body ?? undefined);
    });
  } as typeof fetch;
}
