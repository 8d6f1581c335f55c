import type { Hono } from 'hono';
import { z } from 'zod';
import type { Actor } from '../../outbound/compose.js';
import type { OutboundContent } from '../../providers/types.js';
import { readJson } from '../body.js';
import { requireAuth } from '../middleware.js';
import type { AppEnv, Auth } from '../types.js';

/** Agents' outbound messages: replies in a conversation, and writing first to a new client. */

export const templateSchema = z.strictObject({
  name: z.string().min(1).max(512),
  language: z.strictObject({ code: z.string().min(2).max(15) }),
  // Passed to the provider as given (readJson has bounded how deep it nests).
  components: z.array(z.unknown()).optional(),
});

const contentFields = {
  text: z
    .string()
    .max(4096, 'must be at most 4096 characters')
    .refine((t) => t.trim().length > 0, 'must not be empty')
    .optional(),
  template: templateSchema.optional(),
};

/** Exactly one of `text` and `template`. */
function oneContent(v: { text?: string | undefined; template?: unknown }, ctx: z.RefinementCtx): void {
  if (v.text !== undefined && v.template !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['template'], message: 'send either text or template, not both' });
  } else if (v.text === undefined && v.template === undefined) {
    ctx.addIssue({ code: 'custom', path: ['text'], message: 'is required (or a template)' });
  }
}

export const replySchema = z
  .strictObject({ ...contentFields, replyToMessageId: z.string().min(1).optional() })
  .superRefine(oneContent);

export const writeFirstSchema = z
  .strictObject({
    ...contentFields,
    to: z.string().min(1).max(64),
    name: z.string().trim().min(1).max(120).optional(),
    agentId: z.string().min(1).optional(),
  })
  .superRefine(oneContent);

function contentOf(body: { text?: string | undefined; template?: z.infer<typeof templateSchema> | undefined }): OutboundContent {
  return body.template ? { template: body.template } : { text: body.text! };
}

function actorOf(auth: Auth): Actor {
  return auth.role === 'admin' ? { role: 'admin' } : { role: 'agent', agentId: auth.agentId };
}

export function registerOutbound(app: Hono<AppEnv>): void {
  const anyone = requireAuth();

  app.post('/api/conversations/:id/messages', anyone, async (c) => {
    const body = await readJson(c, replySchema);
    const out = await c.get('deps').services.outbound.reply({
      conversationId: c.req.param('id'),
      content: contentOf(body),
      replyToMessageId: body.replyToMessageId,
      actor: actorOf(c.get('auth')),
    });
    return c.json(out, 202);
  });

  app.post('/api/channels/:id/write-first', anyone, async (c) => {
    const body = await readJson(c, writeFirstSchema);
    const out = c.get('deps').services.outbound.writeFirst({
      channelId: c.req.param('id'),
      to: body.to,
      content: contentOf(body),
      name: body.name,
      agentId: body.agentId,
      actor: actorOf(c.get('auth')),
    });
    return c.json(out, 202);
  });
}
