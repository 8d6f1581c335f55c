import type Database from 'better-sqlite3';
import { relaxedSync } from '../db/relaxed-sync.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../log.js';

/**
 * Forgets `inbound_events` rows (Telegram update ids kept for dedupe, and the record of ignored
 * events) once they are older than `keepMs`. A dedupe key must not live forever: Telegram retries
 * a delivery for at most 24 hours, and after a week without updates a bot's next update_id is
 * random (PROTOCOLS.md §2), so a key kept past that could silently drop a new update that happens
 * to reuse an old id. Nothing reads these rows after that; messages keep their own unique index.
 *
 * Deletes the oldest rows first, at most `batch` ids per statement and a turn of the event loop
 * between statements, so no pass holds the write lock for long. A pass stops at the oldest row still
 * to keep: rows are in insertion order, so after a clock step backwards a few may wait a little
 * longer than `keepMs`, never less. Commits at `synchronous = NORMAL`: a deletion lost to
 * a power cut is only done again.
 */
export interface InboundRetention {
  /** One pass; resolves with how many rows it deleted. */
  sweep(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export interface InboundRetentionOptions {
  clock: Clock;
  log: Logger;
  keepMs: number;
  /** Default one minute. */
  intervalMs?: number;
  /** Ids per DELETE. Default 1,000. */
  batch?: number;
}

export function createInboundRetention(sqlite: Database.Database, opts: InboundRetentionOptions): InboundRetention {
  const { clock, log, keepMs } = opts;
  const intervalMs = opts.intervalMs ?? 60_000;
  const batch = opts.batch ?? 1_000;
  const relaxed = relaxedSync(sqlite);
  // The oldest row by id (a rowid lookup, not a scan: received_at has no index).
  const oldest = sqlite.prepare('SELECT id, received_at FROM inbound_events ORDER BY id LIMIT 1').raw();
  const remove = sqlite.prepare('DELETE FROM inbound_events WHERE id >= ? AND id < ? AND received_at < ?');
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<number> | null = null;

  const turn = () => new Promise((resolve) => setImmediate(resolve));

  async function sweepOnce(): Promise<number> {
    const cutoff = clock.now() - keepMs;
    let deleted = 0;
    for (;;) {
      const row = oldest.get() as [id: number, receivedAt: number] | undefined;
      if (!row || row[1] >= cutoff) return deleted;
      const first = row[0];
      deleted += relaxed.run(() => remove.run(first, first + batch, cutoff).changes);
      await turn();
    }
  }

  return {
    sweep() {
      running ??= sweepOnce().finally(() => (running = null));
      return running;
    },
    start() {
      if (timer) return;
      timer = setInterval(() => {
        this.sweep().then(
          (n) => n > 0 && log.info({ deleted: n }, 'inbound events past their retention deleted'),
          (err: unknown) => log.error({ err }, 'inbound event retention failed; retrying at the next pass'),
        );
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await running?.catch(() => {});
    },
  };
}
