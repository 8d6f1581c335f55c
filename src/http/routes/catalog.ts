import type { Hono } from 'hono';
import { z } from 'zod';
import { readJson } from '../body.js';
import { requireAuth } from '../middleware.js';
import type { AppEnv } from '../types.js';

export const createCompletionCodeSchema = z.strictObject({
  code: z.string().trim().min(1, 'must not be empty').max(64).regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
  label: z.string().trim().min(1, 'must not be empty').max(200),
});

export const createChatbotSchema = z.strictObject({
  name: z.string().trim().min(1, 'must not be empty').max(120),
  url: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }),
});

/** Completion codes and chatbots: account-wide lists that channels refer to. */
export function registerCatalog(app: Hono<AppEnv>): void {
  const admin = requireAuth({ roles: ['admin'] });
  const anyone = requireAuth();

  app.post('/api/completion-codes', admin, async (c) => {
    const body = await readJson(c, createCompletionCodeSchema);
    return c.json(c.get('deps').services.catalog.createCompletionCode(body), 201);
  });
  app.get('/api/completion-codes', anyone, (c) => c.json({ data: c.get('deps').services.catalog.listCompletionCodes() }));

  app.post('/api/chatbots', admin, async (c) => {
    const body = await readJson(c, createChatbotSchema);
    return c.json(c.get('deps').services.catalog.createChatbot(body), 201);
  });
  app.get('/api/chatbots', admin, (c) => c.json({ data: c.get('deps').services.catalog.listChatbots() }));
}
