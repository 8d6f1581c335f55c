import type { GroupCommitter } from '../ingest/group-commit.js';
import type { MessengerConfig, OutboundMessage, ProviderName, SendResult } from '../providers/types.js';
import type { DeliveryJobData } from '../queue/delivery-jobs.js';
import type { DeliveryJobRequest } from '../queue/outbox.js';
import type { ServiceContext } from '../services.js';
import type { OutboundDetails } from './compose.js';
import { createContactMover } from '../ingest/contact-move.js';
import { maxAttempts, nextRetryDelay } from './schedule.js';

/**
 * The delivery worker's side of the database: load what one attempt needs, and record its
 * outcome (attempt log + next step) in ONE transaction. Hot path: prepared statements, results
 * group-committed. Every state change is a compare-and-set on (status, replays, attempts), so a
 * duplicate or stale job (a replay started a new cycle, the sweeper re-queued) changes nothing.
 */

export type AttemptPlan =
  | { kind: 'skip'; reason: string }
  | {
      kind: 'send';
      channelId: string;
      provider: ProviderName;
      messenger: MessengerConfig;
      message: OutboundMessage;
    }
  /** Cannot be sent at all (channel deleted…): recorded as a failed attempt without calling anyone. */
  | { kind: 'fail'; code: string; error: string };

export type AttemptOutcome = 'sent' | 'retrying' | 'dead' | 'stale';

export interface SweepCandidate {
  id: string;
  replays: number;
  attempts: number;
  nextAttemptAt: number | null;
  enqueuedAt: number | null;
}

interface LoadRow {
  id: string;
  status: string;
  attempts: number;
  replays: number;
  channel_id: string;
  message_id: string;
  conversation_id: string;
  agent_id: string | null;
  kind: string;
  text: string | null;
  details: string | null;
  provider: ProviderName;
  messenger: string;
  deleted_at: number | null;
  callback_disabled_at: number | null;
}

/** Meta's "re-engagement" error: the 24-hour window closed (PROTOCOLS.md §1.6). */
const META_REENGAGEMENT = '131047';

/** The error text stored for a failure; a 131047 names the template requirement like the API does. */
export function describeFailure(provider: ProviderName, code: string, message: string): string {
  if (provider === 'whatsapp_business' && code === META_REENGAGEMENT) {
    return `template_required: outside the 24-hour window; only an approved template can reach this contact now (${message})`;
  }
  return message;
}

/**
 * Attempt results wait up to this long to share one transaction (or until this many wait): each
 * commit costs a WAL sync, and at a thousand results a second one sync per few dozen results is
 * plenty. The job completes only after its result is durable.
 */
const RESULT_COALESCE_MS = 15;
const RESULT_COALESCE_MAX = 256;

export function createDeliveryStore(ctx: ServiceContext, committer: GroupCommitter) {
  const sqlite = ctx.db.$client;
  let waiting: Array<() => void> = [];
  let timer: ReturnType<typeof setTimeout> | null = null;
  /** Resolves at the next coalescing tick, so the work submitted then lands in one group commit. */
  function release(): void {
    const batch = waiting;
    waiting = [];
    if (timer) clearTimeout(timer);
    timer = null;
    for (const r of batch) r();
  }
  function nextTick(): Promise<void> {
    return new Promise((resolve) => {
      waiting.push(resolve);
      if (waiting.length >= RESULT_COALESCE_MAX) release();
      else timer ??= setTimeout(release, RESULT_COALESCE_MS);
    });
  }
  const schedule = ctx.config.deliveryRetrySchedule;
  const q = {
    load: sqlite.prepare(
      `SELECT d.id, d.status, d.attempts, d.replays, d.channel_id, m.id AS message_id, m.conversation_id, m.agent_id,
              m.kind, m.text, m.details, c.provider, c.messenger, c.deleted_at, c.callback_disabled_at
       FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN channels c ON c.id = d.channel_id
       WHERE d.id = ?`,
    ),
    info: sqlite.prepare(
      'SELECT d.channel_id, d.message_id, c.provider FROM deliveries d JOIN channels c ON c.id = d.channel_id WHERE d.id = ?',
    ),
    logAttempt: sqlite.prepare(
      `INSERT INTO delivery_attempts (delivery_id, cycle, attempt, at, outcome, http_status, provider_code, error, duration_ms)
       VALUES (@deliveryId, @cycle, @attempt, @at, @outcome, @httpStatus, @providerCode, @error, @durationMs)`,
    ),
    // A success is recorded whatever the cycle: it was sent, and must never be sent again.
    markSent: sqlite.prepare(
      `UPDATE deliveries SET status = 'sent', attempts = CASE WHEN replays = @cycle THEN max(attempts, @attempt) ELSE attempts END,
         next_attempt_at = NULL, last_http_status = @httpStatus, sent_at = @now, sending_until = NULL, updated_at = @now
       WHERE id = @deliveryId AND status IN ('pending', 'retrying')`,
    ),
    idTaken: sqlite
      .prepare('SELECT 1 FROM messages WHERE channel_id = ? AND provider_message_id = ? AND id <> ?')
      .pluck(),
    messageSent: sqlite.prepare(
      `UPDATE messages SET provider_message_id = coalesce(provider_message_id, @providerMessageId), sent_at = coalesce(sent_at, @now),
         status = CASE WHEN status = 'pending' THEN 'sent' ELSE status END, error_code = NULL, updated_at = @now
       WHERE id = @messageId`,
    ),
    markRetrying: sqlite.prepare(
      `UPDATE deliveries SET status = 'retrying', attempts = @attempt, next_attempt_at = @nextAttemptAt, enqueued_at = @now,
         last_error = @error, last_error_code = @code, last_http_status = @httpStatus, sending_until = NULL, updated_at = @now
       WHERE id = @deliveryId AND status IN ('pending', 'retrying') AND replays = @cycle AND attempts = @attempt - 1`,
    ),
    markDead: sqlite.prepare(
      `UPDATE deliveries SET status = 'dead', attempts = @attempt, next_attempt_at = NULL,
         last_error = @error, last_error_code = @code, last_http_status = @httpStatus, sending_until = NULL, updated_at = @now
       WHERE id = @deliveryId AND status IN ('pending', 'retrying') AND replays = @cycle AND attempts = @attempt - 1`,
    ),
    messageFailed: sqlite.prepare(
      `UPDATE messages SET status = 'failed', error_code = @code, updated_at = @now WHERE id = @messageId AND status = 'pending'`,
    ),
    outbox: sqlite.prepare("INSERT INTO outbox (kind, payload, created_at) VALUES ('delivery', ?, ?)"),
    sweep: sqlite.prepare(
      `SELECT id, replays, attempts, next_attempt_at AS nextAttemptAt, enqueued_at AS enqueuedAt FROM deliveries
       WHERE status IN ('pending', 'retrying') AND (enqueued_at IS NULL OR coalesce(next_attempt_at, created_at) <= @due)
         AND (sending_until IS NULL OR sending_until <= @now) AND held_behind IS NULL
       ORDER BY enqueued_at IS NOT NULL, next_attempt_at LIMIT @limit`,
    ),
    // The attempt `job` names is this worker's until `until` (see deliveries.sendingUntil).
    claim: sqlite.prepare(
      `UPDATE deliveries SET sending_until = @until
       WHERE id = @deliveryId AND status IN ('pending', 'retrying') AND replays = @cycle AND attempts = @attempt - 1
         AND (sending_until IS NULL OR sending_until <= @now)`,
    ),
    markEnqueued: sqlite.prepare('UPDATE deliveries SET enqueued_at = ? WHERE id = ?'),
    // What waits for a delivery that just ended (see compose.ts: one, unless ops replayed one).
    heldBehind: sqlite.prepare(
      "SELECT id, replays, attempts FROM deliveries WHERE held_behind = ? AND status IN ('pending', 'retrying')",
    ),
    release: sqlite.prepare('UPDATE deliveries SET held_behind = NULL, enqueued_at = @now, next_attempt_at = @now, updated_at = @now WHERE id = @id'),
    // Held behind a delivery that is not open any more, with nothing having released them (a safety net).
    strandedHeld: sqlite.prepare(
      `SELECT f.id, f.replays, f.attempts FROM deliveries f JOIN deliveries h ON h.id = f.held_behind
       WHERE f.held_behind IS NOT NULL AND f.status IN ('pending', 'retrying') AND h.status IN ('sent', 'dead') LIMIT @limit`,
    ),
    moveRecipient: sqlite.prepare('UPDATE deliveries SET recipient = @to WHERE message_id = @messageId'),
    // PROTOCOLS.md §4: a 410 from an api channel's callback disables the endpoint.
    // Not when the channel changed after the attempt started: a 410 from the old URL must not
    // disable the one a PATCH just put in.
    disableCallback: sqlite.prepare(
      "UPDATE channels SET callback_disabled_at = @now WHERE id = @channelId AND provider = 'api' AND callback_disabled_at IS NULL AND updated_at <= @attemptAt",
    ),
    recipient: sqlite.prepare("SELECT json_extract(details, '$.to') AS \"to\", json_extract(details, '$.migratedFrom') AS migratedFrom FROM messages WHERE id = ?"),
    moveMessage: sqlite.prepare(
      "UPDATE messages SET details = json_set(coalesce(details, '{}'), '$.to', @to, '$.migratedFrom', @from), updated_at = @now WHERE id = @messageId",
    ),
  };
  const mover = createContactMover(sqlite);

  /**
   * Where a recipient that moved (`movedTo`, see SendResult) is followed from and to, or null: a
   * message is followed once, so one that moved before (or a move to where it already is) ends
   * the delivery instead.
   */
  function moveOf(messageId: string, movedTo: string): { from: string; to: string } | null {
    const current = q.recipient.get(messageId) as { to: unknown; migratedFrom: unknown } | undefined;
    if (!current || typeof current.to !== 'string' || current.migratedFrom !== null || current.to === movedTo) return null;
    return { from: current.to, to: movedTo };
  }

  /** Points the message, and the contact (which is the chat: see contact-move.ts), at the new id. */
  function applyMove(info: { channel_id: string; message_id: string }, move: { from: string; to: string }, now: number): void {
    q.moveMessage.run({ messageId: info.message_id, ...move, now });
    q.moveRecipient.run({ messageId: info.message_id, to: move.to });
    mover.move(info.channel_id, move.from, move.to, now);
  }

  /**
   * The delivery `id` ended (sent or dead): what was held behind it (compose.ts) gets its job now,
   * through the outbox, in the same transaction.
   */
  function releaseNext(id: string, now: number): boolean {
    const held = q.heldBehind.all(id) as Array<{ id: string; replays: number; attempts: number }>;
    for (const next of held) releaseHeld(next, now);
    return held.length > 0;
  }

  function releaseHeld(d: { id: string; replays: number; attempts: number }, now: number): void {
    q.release.run({ id: d.id, now });
    const job: DeliveryJobRequest = { deliveryId: d.id, cycle: d.replays, attempt: d.attempts + 1, runAt: now };
    q.outbox.run(JSON.stringify(job), now);
  }

  return {
    /** What attempt `job` needs, or why it should do nothing (already sent/dead, stale job). */
    planAttempt(job: DeliveryJobData): AttemptPlan {
      const row = q.load.get(job.deliveryId) as LoadRow | undefined;
      if (!row) return { kind: 'skip', reason: 'no such delivery' };
      if (row.status === 'sent' || row.status === 'dead') return { kind: 'skip', reason: `already ${row.status}` };
      if (row.replays !== job.cycle || row.attempts + 1 !== job.attempt) {
        return { kind: 'skip', reason: `stale job (delivery at cycle ${row.replays}, attempt ${row.attempts + 1} next)` };
      }
      if (row.deleted_at !== null) return { kind: 'fail', code: 'channel_deleted', error: `channel ${row.channel_id} was deleted` };
      if (row.callback_disabled_at !== null) {
        return {
          kind: 'fail',
          code: 'endpoint_disabled',
          error: `the callback answered 410 Gone at ${new Date(row.callback_disabled_at).toISOString()}; PATCH the channel's messenger settings to call it again`,
        };
      }
      const details = (row.details ? JSON.parse(row.details) : {}) as OutboundDetails;
      const content =
        row.kind === 'template' && details.template ? { template: details.template } : { text: row.text ?? '' };
      return {
        kind: 'send',
        channelId: row.channel_id,
        provider: row.provider,
        messenger: JSON.parse(row.messenger) as MessengerConfig,
        message: {
          messageId: row.message_id,
          deliveryId: row.id,
          conversationId: row.conversation_id,
          agentId: row.agent_id,
          to: details.to,
          content,
          replyToProviderMessageId: details.replyToProviderMessageId,
        },
      };
    },

    /**
     * Logs the attempt and, in the same transaction, moves the delivery on: sent (message `sent`,
     * forward only, with the provider's id), retrying (next attempt through the outbox), or dead
     * (permanent error or no attempts left; message `failed`).
     */
    async recordAttempt(
      job: DeliveryJobData,
      result: SendResult,
      timing: { at: number; durationMs: number },
    ): Promise<{ outcome: AttemptOutcome; nextAttemptAt?: number }> {
      await nextTick();
      const out = await committer.submit(() => {
        const now = ctx.clock.now();
        const base = { deliveryId: job.deliveryId, cycle: job.cycle, attempt: job.attempt, now };
        const info = q.info.get(job.deliveryId) as { channel_id: string; message_id: string; provider: ProviderName };
        if (result.ok) {
          q.logAttempt.run({
            ...base,
            at: timing.at,
            outcome: 'sent',
            httpStatus: result.httpStatus,
            providerCode: null,
            error: null,
            durationMs: timing.durationMs,
          });
          if (q.markSent.run({ ...base, httpStatus: result.httpStatus }).changes !== 1) return { outcome: 'stale' as const };
          let providerMessageId = result.providerMessageId;
          // The provider id is unique per channel; a clash (a provider reusing ids) must not undo the send.
          if (providerMessageId !== null) {
            if (q.idTaken.get(info.channel_id, providerMessageId, info.message_id)) {
              ctx.log.warn({ deliveryId: job.deliveryId }, 'provider message id already used in this channel; not stored');
              providerMessageId = null;
            }
          }
          q.messageSent.run({ messageId: info.message_id, providerMessageId, now });
          return { outcome: 'sent' as const, released: releaseNext(job.deliveryId, now) };
        }

        // PROTOCOLS.md §2.3: a group that became a supergroup is followed there, tried once more at once.
        const move = result.movedTo === undefined ? null : moveOf(info.message_id, result.movedTo);
        const described = describeFailure(info.provider, result.code, result.message);
        const error = move ? `${described}; the chat moved: the next attempt goes to ${move.to}` : described;
        // The next attempt goes to the new id at once, not after the schedule's delay; a move on
        // the last attempt still gets that one more try (once per message, see moveOf).
        // Attempts after it follow the schedule from where this one was.
        const delay = move ? 0 : result.retryable ? nextRetryDelay(schedule, job.attempt, result.retryAfterMs) : null;
        const willRetry = delay !== null;
        q.logAttempt.run({
          ...base,
          at: timing.at,
          outcome: willRetry ? 'retry' : 'failed',
          httpStatus: result.httpStatus ?? null,
          providerCode: result.code,
          error,
          durationMs: timing.durationMs,
        });
        const fields = { ...base, error, code: result.code, httpStatus: result.httpStatus ?? null };
        if (willRetry) {
          const nextAttemptAt = now + delay;
          if (q.markRetrying.run({ ...fields, nextAttemptAt }).changes !== 1) return { outcome: 'stale' as const };
          if (move) applyMove(info, move, now);
          const next: DeliveryJobRequest = { deliveryId: job.deliveryId, cycle: job.cycle, attempt: job.attempt + 1, runAt: nextAttemptAt };
          q.outbox.run(JSON.stringify(next), now);
          return { outcome: 'retrying' as const, nextAttemptAt };
        }
        if (q.markDead.run(fields).changes !== 1) return { outcome: 'stale' as const };
        q.messageFailed.run({ messageId: info.message_id, code: result.code, now });
        if (info.provider === 'api' && result.httpStatus === 410) q.disableCallback.run({ channelId: info.channel_id, now, attemptAt: timing.at });
        return { outcome: 'dead' as const, released: releaseNext(job.deliveryId, now) };
      });
      if (out.outcome === 'retrying' || ('released' in out && out.released)) ctx.notifyOutbox();
      return out;
    },

    /**
     * Takes the attempt `job` names for `leaseMs` before the provider is called: false when it is
     * stale (replayed, or already recorded) or another worker holds it. Through the group
     * committer, so the claims of the jobs that start together share one transaction: a commit
     * of its own per claim cost 0.07–0.18 ms of CPU per delivery on the outbound bench.
     */
    claimAttempt(job: DeliveryJobData, now: number, leaseMs: number): Promise<boolean> {
      return committer.submit(() => q.claim.run({ deliveryId: job.deliveryId, cycle: job.cycle, attempt: job.attempt, now, until: now + leaseMs }).changes === 1);
    },

    /** Attempts per cycle under the configured schedule. */
    maxAttempts: () => maxAttempts(schedule),

    /**
     * Deliveries that may have no job: never handed to the queue (enqueuedAt null), or due for
     * at least `graceMs` (their job should have run by now). The caller checks Redis for the job.
     */
    sweepCandidates(now: number, graceMs: number, limit: number): SweepCandidate[] {
      const stranded = q.strandedHeld.all({ limit }) as Array<{ id: string; replays: number; attempts: number }>;
      if (stranded.length > 0) {
        sqlite.transaction(() => {
          for (const d of stranded) releaseHeld(d, now);
        }).immediate();
        ctx.notifyOutbox();
      }
      return q.sweep.all({ due: now - graceMs, now, limit }) as SweepCandidate[];
    },

    markEnqueued(ids: readonly string[], now: number): void {
      if (ids.length === 0) return;
      sqlite.transaction(() => {
        for (const id of ids) q.markEnqueued.run(now, id);
      })();
    },
  };
}

export type DeliveryStore = ReturnType<typeof createDeliveryStore>;
