import type { Deps } from '../deps.js';
import { createPeriodic } from '../lib/periodic.js';
import type { Logger } from '../log.js';
import type { Timer } from './service.js';

/**
 * The ACD's safety net for work whose job never ran. Offer and wrap-up timers are delayed BullMQ
 * jobs and dispatch triggers are BullMQ jobs, handed to Redis once (their outbox rows are then
 * deleted): Redis restarted empty, a timer that failed all its attempts, or one that fired early
 * and gave up, would leave a conversation `offered` (the agent's load held, the client never
 * re-offered) or in `wrapup` for good, and queued conversations waiting for the next trigger.
 *
 * So, at start and every `intervalMs`: offers and wrap-ups past their deadline by `graceMs` expire
 * here, through the timers' own compare-and-set (whichever of timer and sweeper comes first wins,
 * the other changes nothing); and every `dispatchEveryMs`, each live channel with queued
 * conversations is dispatched. Safe in several processes at once, for the same reason.
 */

export interface AcdSweeperOptions {
  /** Default 5 s. */
  intervalMs?: number | undefined;
  /** How long past its deadline a timer is left to its job first. Default 5 s. */
  graceMs?: number | undefined;
  /** Default 30 s. */
  dispatchEveryMs?: number | undefined;
  /** Timers of each kind applied per pass. Default 500. */
  batch?: number | undefined;
  /** Timers applied per transaction (one WAL sync each); the event loop gets a turn between. Default 50. */
  chunk?: number | undefined;
  log?: Logger | undefined;
}

export interface AcdSweepResult {
  offers: number;
  wrapups: number;
  /** Conversations assigned by the dispatches this pass ran. */
  assigned: number;
}

export interface AcdSweeper {
  /** One pass; `dispatch` also dispatches every channel with a queue (else only when due). */
  sweep(opts?: { dispatch?: boolean }): Promise<AcdSweepResult>;
  start(): void;
  /** Stops the timer and waits for a pass in progress (it stops between chunks). */
  stop(): Promise<void>;
}

export function createAcdSweeper(deps: Pick<Deps, 'services' | 'clock' | 'log' | 'db'>, opts: AcdSweeperOptions = {}): AcdSweeper {
  const intervalMs = opts.intervalMs ?? 5_000;
  const graceMs = opts.graceMs ?? 5_000;
  const dispatchEveryMs = opts.dispatchEveryMs ?? 30_000;
  const batch = opts.batch ?? 500;
  const chunk = opts.chunk ?? 50;
  const log = opts.log ?? deps.log;
  const { acd } = deps.services;
  let lastDispatch = -Infinity;

  /**
   * Applies `timers` with `expire`, `chunk` to a transaction: each expire is its own transaction
   * (a savepoint inside this one), so a backlog after an outage costs one WAL sync per chunk, not
   * one per conversation on the event loop (500 of each took 1.4 s one at a time). One that
   * throws rolls back alone and is left for the next pass.
   */
  async function applyAll(timers: Timer[], expire: (id: string, seq: number) => boolean): Promise<number> {
    let applied = 0;
    for (let i = 0; i < timers.length; i += chunk) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      if (periodic.stopped) break;
      deps.db.$client.transaction(() => {
        for (const t of timers.slice(i, i + chunk)) {
          try {
            if (expire(t.id, t.seq)) applied++;
          } catch (err) {
            log.warn({ conversationId: t.id, err: (err as Error).message }, 'acd sweeper could not apply a timeout; next pass');
          }
        }
      }).immediate();
    }
    return applied;
  }

  async function sweepOnce({ dispatch = false }: { dispatch?: boolean } = {}): Promise<AcdSweepResult> {
    const now = deps.clock.now();
    const due = acd.overdue(now - graceMs, batch);
    const offers = await applyAll(due.offers, acd.expireOffer);
    const wrapups = await applyAll(due.wrapups, acd.expireWrapup);
    let assigned = 0;
    // Paced by the process's own clock, not deps.clock: deadlines are in the latter's time.
    const at = performance.now();
    if (dispatch || at - lastDispatch >= dispatchEveryMs) {
      lastDispatch = at;
      for (const channelId of acd.channelsWithQueue()) assigned += acd.dispatch(channelId).assigned;
    }
    if (offers + wrapups + assigned > 0) {
      // Each of these is work a lost or failed job should have done: worth a line.
      log.info({ offers, wrapups, assigned }, 'acd sweeper applied overdue timers and dispatched queues');
    }
    return { offers, wrapups, assigned };
  }

  const periodic = createPeriodic(sweepOnce, { intervalMs, log, what: 'acd sweeper', firstPass: 'next-turn' });
  return { sweep: periodic.run, start: periodic.start, stop: periodic.stop };
}
