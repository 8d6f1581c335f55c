import type { Hono } from 'hono';
import { z } from 'zod';
import { agentStatuses } from '../../db/schema.js';
import { readJson } from '../body.js';
import { assertAdminOrSelf, requireAuth } from '../middleware.js';
import type { AppEnv } from '../types.js';

export const createAgentSchema = z.strictObject({
  name: z.string().trim().min(1, 'must not be empty').max(120),
  email: z.email('must be an email address').max(254),
});

export const patchAgentSchema = z
  .strictObject({
    name: z.string().trim().min(1, 'must not be empty').max(120).optional(),
    email: z.email('must be an email address').max(254).optional(),
  })
  .refine((v) => v.name !== undefined || v.email !== undefined, { message: 'nothing to change', path: ['name'] });

export const setStatusSchema = z.strictObject({
  status: z.enum(agentStatuses, { message: `must be one of ${agentStatuses.join(', ')}` }),
  substatus: z.string().trim().min(1).max(64).nullable().optional(),
});

export function registerAgents(app: Hono<AppEnv>): void {
  const admin = requireAuth({ roles: ['admin'] });
  const anyone = requireAuth();

  app.post('/api/agents', admin, async (c) => {
    const body = await readJson(c, createAgentSchema);
    const agent = await c.get('deps').services.agents.create(body);
    return c.json(agent, 201, { Location: `/api/agents/${agent.id}` });
  });

  app.get('/api/agents', admin, (c) => c.json({ data: c.get('deps').services.agents.list() }));

  app.get('/api/agents/:id', anyone, (c) => {
    const id = c.req.param('id');
    assertAdminOrSelf(c.get('auth'), id);
    return c.json(c.get('deps').services.agents.get(id));
  });

  app.patch('/api/agents/:id', admin, async (c) => {
    const body = await readJson(c, patchAgentSchema);
    return c.json(c.get('deps').services.agents.update(c.req.param('id'), body));
  });

  app.put('/api/agents/:id/status', anyone, async (c) => {
    const id = c.req.param('id');
    assertAdminOrSelf(c.get('auth'), id);
    const body = await readJson(c, setStatusSchema);
    return c.json(c.get('deps').services.agents.setStatus(id, body.status, body.substatus ?? null));
  });
}
