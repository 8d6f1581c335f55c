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
  /**
   * Registers a listener; `ready` resolves once the Redis subscription is live (events before it
   * are not seen). `onEnd` is called, once, when events may from then on be missed: the Redis
   * subscription dropped (pub/sub keeps nothing for a subscriber that is away), or the process is
   * shutting down. The listener is then gone; a stream should end and its client reconnect.
   */
  subscribe(agentId: string, listener: AgentEventListener, onEnd?: (reason: string) => void): { ready: Promise<void>; unsubscribe: () => void };
  /** Ends every subscription (their `onEnd`), e.g. before the HTTP server waits for open streams. */
  endAll(reason: string): void;
  close(): Promise<void>;
}

export function createAgentEventHub(opts: { connect: () => Redis; prefix: string; log: Logger }): AgentEventHub {
  const listeners = new Map<string, Set<AgentEventListener>>();
  const enders = new Map<AgentEventListener, (reason: string) => void>();

  function endAll(reason: string): void {
    const ending = [...enders.values()];
    listeners.clear();
    enders.clear();
    for (const end of ending) end(reason);
  }
  let sub: Redis | null = null;
  let subscribed: Promise<void> = Promise.resolve();
  const channel = agentEventsChannel(opts.prefix);

  function ensureSubscribed(): Promise<void> {
    if (sub) return subscribed;
    const conn = opts.connect();
    sub = conn;
    conn.on('error', () => {});
    // Whatever was published while the connection was down is gone: end the streams that were
    // listening (their clients reconnect), and hold new ones until the subscription is back
    // (ioredis subscribes again by itself when it reconnects).
    let live = false;
    conn.on('close', () => {
      if (!live || sub !== conn) return;
      live = false;
      opts.log.warn('agent events: Redis subscription lost; open event streams ended');
      // ioredis sends SUBSCRIBE again as it becomes ready, before anything else on the connection.
      subscribed = new Promise((resolve) =>
        conn.once('ready', () => {
          live = true;
          resolve();
        }),
      );
      endAll('subscription lost');
    });
    subscribed = conn.subscribe(channel).then(
      () => {
        live = true;
      },
      (err: Error) => opts.log.warn({ err: err.message }, 'agent events: subscribe failed'),
    );
    conn.on('message', (_ch: string, message: string) => {
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
    subscribe(agentId, listener, onEnd) {
      const ready = ensureSubscribed();
      let set = listeners.get(agentId);
      if (!set) listeners.set(agentId, (set = new Set()));
      set.add(listener);
      if (onEnd) enders.set(listener, onEnd);
      return {
        ready,
        unsubscribe: () => {
          enders.delete(listener);
          const current = listeners.get(agentId);
          current?.delete(listener);
          if (current?.size === 0) listeners.delete(agentId);
        },
      };
    },
    endAll,
    async close() {
      endAll('shutting down');
      const conn = sub;
      sub = null;
      conn?.disconnect();
    },
  };
}
