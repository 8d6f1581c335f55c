import type { Logger } from '../log.js';

/**
 * A background pass run every `intervalMs` and on demand, the shape the sweepers share: one pass
 * at a time (a call while one runs gets that pass), a timer that does not keep the process alive,
 * failures logged on the first and then every 60th in a row, and a stop that waits for the pass
 * in progress.
 */
export interface Periodic<A extends unknown[], T> {
  /** One pass now, or the one already running. */
  run(...args: A): Promise<T>;
  start(): void;
  stop(): Promise<void>;
  /** stop() was called (a long pass may check it between steps). */
  readonly stopped: boolean;
}

export interface PeriodicOptions {
  intervalMs: number;
  log: Logger;
  /** Names the pass in the failure line: `${what} failed; retrying`. */
  what: string;
  /** The first pass at start(): in this turn (default), or the next (the process finishes starting first). */
  firstPass?: 'now' | 'next-turn';
}

export function createPeriodic<A extends unknown[], T>(pass: (...args: A) => Promise<T>, opts: PeriodicOptions): Periodic<A, T> {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<T> | null = null;
  let stopped = false;
  let failures = 0;

  function run(...args: A): Promise<T> {
    running ??= pass(...args).finally(() => {
      running = null;
    });
    return running;
  }

  async function tick(): Promise<void> {
    if (stopped) return;
    try {
      await run(...([] as unknown[] as A));
      failures = 0;
    } catch (err) {
      failures++;
      if (failures === 1 || failures % 60 === 0) opts.log.warn({ err: (err as Error).message, failures }, `${opts.what} failed; retrying`);
    }
  }

  return {
    run,
    start() {
      if (timer) return;
      stopped = false;
      if (opts.firstPass === 'next-turn') setImmediate(() => void tick());
      else void tick();
      timer = setInterval(() => void tick(), opts.intervalMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running?.catch(() => {});
    },
    get stopped() {
      return stopped;
    },
  };
}
