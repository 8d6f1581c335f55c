import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import type { Actor } from '../../acd/service.js';
import type { ConversationRow } from '../../conversations/service.js';
import { readJson } from '../body.js';
import { assertAdminOrSelf, requireAuth } from '../middleware.js';
import type { AppEnv, Auth } from '../types.js';

export const completionCodeBodySchema = z.strictObject({ completionCodeId: z.string().min(1) });

function actorOf(auth: Auth): Actor {
  return { agentId: auth.role === 'agent' ? auth.agentId : null };
}

const HEARTBEAT_MS = 15_000;

/** The conversation an action left behind, as GET /api/conversations/:id shows it. */
function view(c: Context<AppEnv>, row: ConversationRow) {
  return c.get('deps').services.conversations.view(row);
}

/** The agent's side of distribution: answer offers, close, pick a code; live events over SSE. */
export function registerAcd(app: Hono<AppEnv>): void {
  const anyone = requireAuth();
  const admin = requireAuth({ roles: ['admin'] });

  app.post('/api/conversations/:id/accept', anyone, (c) =>
    c.json(view(c, c.get('deps').services.acd.accept(c.req.param('id'), actorOf(c.get('auth'))))),
  );
  app.post('/api/conversations/:id/reject', anyone, (c) =>
    c.json(view(c, c.get('deps').services.acd.reject(c.req.param('id'), actorOf(c.get('auth'))))),
  );
  app.post('/api/conversations/:id/close', anyone, (c) =>
    c.json(view(c, c.get('deps').services.acd.close(c.req.param('id'), actorOf(c.get('auth'))))),
  );
  app.post('/api/conversations/:id/completion-code', anyone, async (c) => {
    const body = await readJson(c, completionCodeBodySchema);
    const conv = c.get('deps').services.acd.setCompletionCode(c.req.param('id'), body.completionCodeId, actorOf(c.get('auth')));
    return c.json(view(c, conv));
  });

  // The chatbot's integration (admin token) hands a `bot` conversation over to ACD.
  app.post('/api/conversations/:id/handoff', admin, (c) => c.json(view(c, c.get('deps').services.acd.handoff(c.req.param('id')))));

  app.get('/api/channels/:id/queue', admin, (c) => {
    const deps = c.get('deps');
    const channel = deps.services.channels.get(c.req.param('id'));
    return c.json({ channelId: channel.id, data: deps.services.acd.queue(channel.id) });
  });

  /** Server-Sent Events: offer, assigned, offer-timeout, wrapup-timeout, offer-rescinded, status, message. */
  app.get('/api/agents/:id/events', anyone, (c) => {
    const agentId = c.req.param('id');
    assertAdminOrSelf(c.get('auth'), agentId);
    const deps = c.get('deps');
    deps.services.agents.get(agentId);
    return streamSSE(c, async (stream) => {
      let counter = 0;
      const queue: Array<{ event: string; data: string }> = [];
      let wake: (() => void) | null = null;
      let ended: string | null = null;
      const { ready, unsubscribe } = deps.events.subscribe(
        agentId,
        (e) => {
          queue.push({ event: e.event, data: JSON.stringify(e.data) });
          wake?.();
        },
        (reason) => {
          ended = reason;
          wake?.();
        },
      );
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      // 'ready' only once the cross-process subscription is live, so no later event is missed.
      await ready;
      if (ended === null) await stream.writeSSE({ event: 'ready', data: JSON.stringify({ agentId }) });
      while (!stream.aborted && ended === null) {
        const next = queue.shift();
        if (next) {
          await stream.writeSSE({ ...next, id: String(++counter) });
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, HEARTBEAT_MS);
        });
        wake = null;
        if (queue.length === 0 && !stream.aborted && ended === null) await stream.write(': keep-alive\n\n');
      }
      // Events may be missed from here on (see AgentEventHub): say so, flush what came before, and
      // end the stream; the client reconnects and reads the current state.
      if (ended !== null && !stream.aborted) {
        for (const next of queue.splice(0)) await stream.writeSSE({ ...next, id: String(++counter) });
        await stream.writeSSE({ event: 'end', data: JSON.stringify({ reason: ended }) });
      }
      unsubscribe();
    });
  });
}
