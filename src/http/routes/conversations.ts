import type { Hono } from 'hono';
import { z } from 'zod';
import { conversationStates } from '../../db/schema.js';
import { readQuery } from '../body.js';
import { requireAuth } from '../middleware.js';
import type { AppEnv } from '../types.js';

export const listConversationsQuery = z.strictObject({
  channelId: z.string().min(1).optional(),
  state: z.enum(conversationStates, { message: `must be one of ${conversationStates.join(', ')}` }).optional(),
  agentId: z.string().min(1).optional(),
  limit: z.coerce.number().int('must be an integer').min(1).max(200).default(50),
  cursor: z.string().min(1).optional(),
});

/** Read API over what ingest and ACD stored. */
export function registerConversations(app: Hono<AppEnv>): void {
  const admin = requireAuth({ roles: ['admin'] });

  app.get('/api/conversations', admin, (c) =>
    c.json(c.get('deps').services.conversations.list(readQuery(c, listConversationsQuery))),
  );
  app.get('/api/conversations/:id', admin, (c) => c.json(c.get('deps').services.conversations.get(c.req.param('id'))));
  app.get('/api/conversations/:id/messages', admin, (c) =>
    c.json({ data: c.get('deps').services.conversations.messages(c.req.param('id')) }),
  );
  app.get('/api/conversations/:id/history', admin, (c) =>
    c.json({ data: c.get('deps').services.conversations.history(c.req.param('id')) }),
  );
  app.get('/api/contacts/:id', admin, (c) => c.json(c.get('deps').services.conversations.contact(c.req.param('id'))));
}
