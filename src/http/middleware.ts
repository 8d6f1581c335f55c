import type { MiddlewareHandler } from 'hono';
import { AppError } from '../errors.js';
import { sha256Hex } from '../lib/crypto.js';
import { AGENT_TOKEN_PREFIX } from '../lib/tokens.js';
import type { Deps } from '../deps.js';
import type { AppEnv, Auth } from './types.js';

/** The part of @hono/node-server's `c.env.outgoing` (Node's ServerResponse) used here. */
interface OutgoingHeaders {
  setHeader(name: string, value: string): unknown;
}

/**
 * What every request gets first, in one middleware (one async frame instead of three: on the
 * webhook path each layer of Hono's chain is a promise and a turn of the microtask queue):
 *
 * - `deps` on the context;
 * - a request id: the caller's X-Request-Id when it looks sane, else a new one; echoed back;
 * - one access-log line per request: method, route, status, duration, request id. No headers, no
 *   bodies.
 *
 * Under @hono/node-server the echo is set on the Node response (`c.env.outgoing`), which merges it
 * into the head it writes: `c.header()` would turn every response's headers into a `Headers`
 * object, which took node-server off its plain-object fast path and cost about 25 µs per request
 * on the ingest benchmark. Elsewhere (app.request in tests, other runtimes) it is `c.header()`.
 */
export const requestContext = (deps: Deps, { header = 'X-Request-Id' } = {}): MiddlewareHandler<AppEnv> =>
  async function requestContext(c, next) {
    const start = performance.now();
    c.set('deps', deps);
    const given = c.req.header(header);
    const id = given && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
    c.set('requestId', id);
    const outgoing = (c.env as { outgoing?: Partial<OutgoingHeaders> } | undefined)?.outgoing;
    if (typeof outgoing?.setHeader === 'function') outgoing.setHeader(header, id);
    else c.header(header, id);

    await next();

    const status = c.res.status;
    if (status < 500 && !deps.log.isLevelEnabled('info')) return; // nothing to write: build nothing
    const line = {
      requestId: id,
      method: c.req.method,
      // The route pattern, not the raw path: webhook keys and ids are not logged as URLs.
      route: c.req.routePath,
      status,
      ms: Math.round((performance.now() - start) * 10) / 10,
    };
    if (status >= 500) deps.log.error(line, 'request');
    else deps.log.info(line, 'request');
  };


/**
 * Bearer auth: the admin token, or an agent's own token (stored as a SHA-256 hash).
 * `roles` limits who may call the route; 401 without a valid token, 403 for the wrong role.
 */
export const requireAuth = ({ roles = ['admin', 'agent'] as Array<Auth['role']> } = {}): MiddlewareHandler<AppEnv> =>
  async function requireAuth(c, next) {
    const header = c.req.header('Authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new AppError('unauthorized', 'Missing bearer token');
    const token = m[1]!;
    const deps = c.get('deps');
    let auth: Auth | null = null;
    if (token.startsWith(AGENT_TOKEN_PREFIX)) {
      const agentId = deps.services.agents.findIdByTokenHash(await sha256Hex(token));
      if (agentId) auth = { role: 'agent', agentId };
    } else if (await deps.mac.safeEqual(token, deps.adminToken)) {
      auth = { role: 'admin' };
    }
    if (!auth) throw new AppError('unauthorized', 'Invalid bearer token');
    if (!roles.includes(auth.role)) throw new AppError('forbidden', 'This endpoint is for admins only');
    c.set('auth', auth);
    await next();
  };

/** Admin, or the agent named by `agentId`. */
export function assertAdminOrSelf(auth: Auth, agentId: string): void {
  if (auth.role === 'admin') return;
  if (auth.agentId !== agentId) throw new AppError('forbidden', 'Agents may only act for themselves');
}
