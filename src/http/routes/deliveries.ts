import type { Hono } from 'hono';
import { z } from 'zod';
import { deliveryStatuses } from '../../db/schema.js';
import { REPLAY_LIMIT_DEFAULT, replayableStatuses } from '../../outbound/ops.js';
import { readJson, readQuery } from '../body.js';
import { requireAuth } from '../middleware.js';
import type { AppEnv } from '../types.js';

/** Ops over outbound deliveries (admin only): list, inspect with attempts, replay one or many. */

const timeBound = z.union([z.string().min(1).max(40), z.number().int().nonnegative()]);

export const listDeliveriesQuery = z.strictObject({
  status: z.enum(deliveryStatuses, { message: `must be one of ${deliveryStatuses.join(', ')}` }).optional(),
  channelId: z.string().min(1).optional(),
  since: z.string().min(1).max(40).optional(),
  until: z.string().min(1).max(40).optional(),
  errorCode: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int('must be an integer').min(1).max(200).default(50),
  cursor: z.string().min(1).optional(),
});

export const replayManySchema = z.strictObject({
  filter: z
    .strictObject({
      status: z
        .enum(replayableStatuses, { message: `must be one of ${replayableStatuses.join(', ')} (sent deliveries are never replayed)` })
        .optional(),
      channelId: z.string().min(1).optional(),
      since: timeBound.optional(),
      until: timeBound.optional(),
      errorCode: z.string().min(1).max(100).optional(),
    })
    .default({}),
  dryRun: z.boolean().default(false),
  limit: z.number().int('must be an integer').min(1).max(10_000).default(REPLAY_LIMIT_DEFAULT),
});

export function registerDeliveries(app: Hono<AppEnv>): void {
  const admin = requireAuth({ roles: ['admin'] });

  app.get('/api/deliveries', admin, (c) => c.json(c.get('deps').services.outbound.listDeliveries(readQuery(c, listDeliveriesQuery))));

  app.get('/api/deliveries/:id', admin, (c) => c.json(c.get('deps').services.outbound.getDelivery(c.req.param('id'))));

  app.post('/api/deliveries/:id/replay', admin, (c) =>
    c.json(c.get('deps').services.outbound.replayDelivery(c.req.param('id')), 202),
  );

  // Registered as `:action` rather than the literal `/api/deliveries/replay`: a literal segment
  // where `/:id/replay` has a parameter is a pair Hono's RegExpRouter cannot hold, so SmartRouter
  // fell back to TrieRouter for every request, webhooks included (about 2% of the ingest path's
  // event loop). Any other action is an unknown route, answered before authentication as before.
  app.post(
    '/api/deliveries/:action',
    async (c, next) => {
      if (c.req.param('action') !== 'replay') return c.notFound(); // the app's own not-found answer
      await next();
    },
    admin,
    async (c) => {
      const body = await readJson(c, replayManySchema);
      const out = c.get('deps').services.outbound.replayDeliveries(body.filter, { dryRun: body.dryRun, limit: body.limit });
      return c.json(out, body.dryRun ? 200 : 202);
    },
  );
}
