import type { Db } from '../db/client.js';
import { outbox } from '../db/schema.js';

/** Job payloads carried through the outbox to BullMQ / Redis pub/sub. */
export type OutboxItem =
  | { kind: 'dispatch'; payload: { channelId: string } }
  | {
      kind: 'timer';
      payload: { job: 'expire-offer' | 'expire-wrapup'; conversationId: string; seq: number; runAt: number };
    }
  | { kind: 'event'; payload: { agentId: string; event: string; data: Record<string, unknown> } }
  | { kind: 'delivery'; payload: DeliveryJobRequest };

/** One delivery attempt to queue: the job id is `deliveryJobId(deliveryId, cycle, attempt)`. */
export interface DeliveryJobRequest {
  deliveryId: string;
  /** The delivery's replay count when queued. */
  cycle: number;
  /** 1-based attempt number within the cycle. */
  attempt: number;
  /** Unix ms when the attempt is due (the job's delay). */
  runAt: number;
}

type Tx = Pick<Db, 'insert'>;

/** Writes outbox rows inside the caller's transaction. */
export function addToOutbox(tx: Tx, now: number, items: OutboxItem[]): void {
  if (items.length === 0) return;
  tx.insert(outbox)
    .values(items.map((i) => ({ kind: i.kind, payload: i.payload as Record<string, unknown>, createdAt: now })))
    .run();
}
