import type { Hono } from 'hono';
import { createChannelSchema, patchChannelSchema } from '../../channels/settings.js';
import { readJson } from '../body.js';
import { requireAuth } from '../middleware.js';
import type { AppEnv } from '../types.js';

export function registerChannels(app: Hono<AppEnv>): void {
  const admin = requireAuth({ roles: ['admin'] });

  app.post('/api/channels', admin, async (c) => {
    const body = await readJson(c, createChannelSchema);
    const channel = c.get('deps').services.channels.create(body);
    return c.json(channel, 201, { Location: `/api/channels/${channel.id}` });
  });

  app.get('/api/channels', admin, (c) => c.json({ data: c.get('deps').services.channels.list() }));

  app.get('/api/channels/:id', admin, (c) => c.json(c.get('deps').services.channels.get(c.req.param('id'))));

  app.patch('/api/channels/:id', admin, async (c) => {
    const body = await readJson(c, patchChannelSchema);
    return c.json(c.get('deps').services.channels.patch(c.req.param('id'), body));
  });

  app.delete('/api/channels/:id', admin, (c) => {
    c.get('deps').services.channels.remove(c.req.param('id'));
    return c.body(null, 204);
  });

  app.post('/api/channels/:id/rotate-webhook-key', admin, (c) =>
    c.json(c.get('deps').services.channels.rotateWebhookKey(c.req.param('id'))),
  );
}
