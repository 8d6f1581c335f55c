import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Deps } from './deps.js';
import { AppError, toProblem, type ErrorCode } from './errors.js';
import { requestContext } from './http/middleware.js';
import { registerAcd } from './http/routes/acd.js';
import { registerAgents } from './http/routes/agents.js';
import { registerCatalog } from './http/routes/catalog.js';
import { registerChannels } from './http/routes/channels.js';
import { registerConversations } from './http/routes/conversations.js';
import { registerDeliveries } from './http/routes/deliveries.js';
import { registerHealth } from './http/routes/health.js';
import { registerOutbound } from './http/routes/outbound.js';
import { registerWebhooks } from './http/routes/webhooks.js';
import type { AppEnv } from './http/types.js';

/** The Hono app: middleware, then a flat list of route modules. No business logic here. */
export function createApp(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use('*', requestContext(deps));

  registerHealth(app);
  registerAgents(app);
  registerCatalog(app);
  registerChannels(app);
  registerWebhooks(app);
  registerConversations(app);
  registerAcd(app);
  registerOutbound(app);
  registerDeliveries(app);

  app.notFound((c) => problem(c.get('requestId'), new AppError('not_found', `No route for ${c.req.method} ${c.req.path}`)));

  app.onError((err, c) => {
    const rid = c.get('requestId');
    if (err instanceof AppError) return problem(rid, err);
    if (err instanceof HTTPException) {
      const code: ErrorCode =
        err.status === 413 ? 'payload_too_large' : err.status === 401 ? 'unauthorized' : err.status === 404 ? 'not_found' : 'validation_failed';
      return problem(rid, new AppError(code, err.message || 'Request refused'));
    }
    deps.log.error({ err, requestId: rid, route: c.req.routePath }, 'unhandled error');
    return problem(rid, new AppError('internal', 'Something went wrong; the request id helps us find it'));
  });

  return app;
}

function problem(requestId: string | undefined, err: AppError): Response {
  return new Response(JSON.stringify(toProblem(err, requestId)), {
    status: err.status,
    headers: { 'Content-Type': 'application/problem+json', ...(requestId ? { 'X-Request-Id': requestId } : {}) },
  });
}
