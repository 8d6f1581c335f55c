import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { agentEventsChannel } from './names.js';

export interface AgentEvent {
  agentId: string;
  event: string;
  data: Record<string, unknown>;
}

export type AgentEventListener = (e: AgentEvent) => void;

/**
 * Fans agent events out to this process's SSE streams. Events are published to one Redis pub/sub
 * channel by the outbox relay of whichever process committed them, so an agent connected to any
 * process hears about offers made by any other. The subscriber connects on the first listener.
 */
export interface AgentEventHub {
  /** Registers a listener; `ready` resolves once the Redis subscription is live (events before it are not seen). */
  subscribe(agentId: string, listener: AgentEventListener): { ready: Promise<void>; unsubscribe: () => void };
  close(): Promise<void>;
}

export function createAgentEventHub(opts: { connect: () => Redis; prefix: string; log: Logger }): AgentEventHub {
  const listeners = new Map<string, Set<AgentEventListener>>();
  let sub: Redis | null = null;
  let subscribed: Promise<void> = Promise.resolve();
  const channel = agentEventsChannel(opts.prefix);

  function ensureSubscribed(): Promise<void> {
    if (sub) return subscribed;
    sub = opts.connect();
    sub.on('error', () => {});
    subscribed = sub.subscribe(channel).then(
      () => undefined,
      (err: Error) => opts.log.warn({ err: err.message }, 'agent events: subscribe failed'),
    );
    sub.on('message', (_ch: string, message: string) => {
      let e: AgentEvent;
      try {
        e = JSON.parse(message) as AgentEvent;
      } catch {
        return;
      }
      for (const l of listeners.get(e.agentId) ?? []) l(e);
    });
    return subscribed;
  }

  return {
    subscribe(agentId, listener) {
      const ready = ensureSubscribed();
      let set = listeners.get(agentId);
      if (!set) listeners.set(agentId, (set = new Set()));
      set.add(listener);
      return {
        ready,
        unsubscribe: () => {
          set.delete(listener);
          if (set.size === 0) listeners.delete(agentId);
        },
      };
    },
    async close() {
      listeners.clear();
      sub?.disconnect();
      sub = null;
    },
  };
}
