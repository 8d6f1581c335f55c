import type { Deps } from '../deps.js';
import type { Logger } from '../log.js';

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
  sweep(opts?: { dispatch?: boolean }): AcdSweepResult;
  start(): void;
  stop(): void;
}

export function createAcdSweeper(deps: Pick<Deps, 'services' | 'clock' | 'log'>, opts: AcdSweeperOptions = {}): AcdSweeper {
  const intervalMs = opts.intervalMs ?? 5_000;
  const graceMs = opts.graceMs ?? 5_000;
  const dispatchEveryMs = opts.dispatchEveryMs ?? 30_000;
  const batch = opts.batch ?? 500;
  const log = opts.log ?? deps.log;
  const { acd } = deps.services;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let lastDispatch = -Infinity;
  let failures = 0;

  function sweep({ dispatch = false } = {}): AcdSweepResult {
    const now = deps.clock.now();
    const due = acd.overdue(now - graceMs, batch);
    let offers = 0;
    let wrapups = 0;
    for (const t of due.offers) if (acd.expireOffer(t.id, t.seq)) offers++;
    for (const t of due.wrapups) if (acd.expireWrapup(t.id, t.seq)) wrapups++;
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

  function tick(): void {
    if (stopped) return;
    try {
      sweep();
      failures = 0;
    } catch (err) {
      failures++;
      if (failures === 1 || failures % 60 === 0) log.warn({ err: (err as Error).message, failures }, 'acd sweeper failed; retrying');
    }
  }

  return {
    sweep,
    start() {
      if (timer) return;
      stopped = false;
      // Not in this turn: the process finishes starting first.
      setImmediate(tick);
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
