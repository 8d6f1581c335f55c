import { closeSync, fdatasync, fstatSync, openSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';

/**
 * Makes a WAL-mode database's commits durable off the event loop: `fdatasync` of the WAL file on
 * libuv's threadpool. Commits made with `synchronous = NORMAL` are in the WAL (in the OS page
 * cache) but not yet on disk; one sync after them makes them durable, because a commit's frames
 * are in the WAL file before any connection, in any process, can see the commit, SQLite only
 * appends to the WAL (or rewrites it from its start once a checkpoint has copied every frame into
 * the database file and synced it), and an fdatasync covers every page of the file written before
 * it.
 *
 * A failed fdatasync is final. Linux may mark the pages whose write failed as clean, so a later
 * sync can succeed without writing them: acknowledging anything after that could acknowledge a
 * commit whose WAL no longer holds together. So from then on every sync fails with the first
 * error, and `failure()` says so (readiness reports it: the gateway needs a restart).
 */
export interface WalSync {
  /** Calls back once every commit made before the call is on disk (or with the error). */
  sync(done: (err: Error | null) => void): void;
  /** The fdatasync error that stopped all syncing, if one did. */
  failure(): Error | null;
  close(): void;
}

/** A WAL that cannot be opened is tried again this many times, this far apart (about 1 s in all). */
const OPEN_RETRIES = 20;
const OPEN_RETRY_MS = 50;

/**
 * A WalSync for `sqlite`'s WAL file, or null when it has none (in memory, or not in WAL mode).
 * `fdatasync` and `openSync` are node:fs's; fault tests pass ones that fail like a dying disk or a
 * process out of file descriptors.
 */
export function createWalSync(
  sqlite: Database.Database,
  { fdatasync: syncFile = fdatasync, openSync: openFile = openSync, openRetries = OPEN_RETRIES, openRetryMs = OPEN_RETRY_MS } = {},
): WalSync | null {
  if (sqlite.memory) return null;
  if (sqlite.pragma('journal_mode', { simple: true }) !== 'wal') return null;
  // Absolute now: DATA_DIR may be relative, and the file is opened at the first sync.
  const walPath = path.resolve(`${sqlite.name}-wal`);
  let fd: number | null = null;
  let closed = false;
  let failed: Error | null = null;
  /** An fdatasync is running; callers meanwhile wait in `next` for the one after it. */
  let inFlight = false;
  let next: Array<(err: Error | null) => void> = [];

  /**
   * One fdatasync at a time, for everyone who asked before it started. Two at once on one file
   * description would share its write-back error: Linux reports it to whichever checks first, and
   * the other returns 0 although the pages it covered were never written (a review found the
   * relay's sync and a batch's sync in flight together, the batch then acknowledged).
   */
  function start(): void {
    const callers = next;
    next = [];
    const finish = (err: Error | null) => {
      inFlight = false;
      for (const done of callers) done(err);
      if (next.length > 0 && !inFlight) {
        if (failed) for (const done of next.splice(0)) done(failed);
        else start();
      }
    };
    inFlight = true;
    attempt(finish, 0);
  }

  /**
   * Opens the WAL if need be, then syncs it. A failed open (too many open files, the WAL being
   * recreated) is tried again a few times first: the callers' commits are already in the WAL, and
   * an error would refuse work that is stored (a 500 for a webhook kept all the same). Nothing
   * is at risk meanwhile, so such a failure is never final.
   */
  function attempt(finish: (err: Error | null) => void, tries: number): void {
    if (closed) {
      finish(new Error('WAL sync closed'));
      return;
    }
    try {
      // SQLite deletes the WAL only when its last connection closes; should it ever be
      // recreated, the descriptor of the unlinked file would sync nothing that matters.
      if (fd !== null && fstatSync(fd).nlink === 0) {
        closeSync(fd);
        fd = null;
      }
      fd ??= openFile(walPath, 'r');
    } catch (err) {
      if (tries < openRetries) setTimeout(() => attempt(finish, tries + 1), openRetryMs);
      else finish(err as Error); // nothing was synced, nothing was lost: the next sync tries again
      return;
    }
    syncFile(fd, (err) => {
      if (err && !failed) failed = new Error(`WAL sync failed, nothing more is acknowledged until a restart: ${err.message}`, { cause: err });
      finish(failed);
    });
  }

  return {
    sync(done) {
      if (failed) {
        done(failed);
        return;
      }
      // A sync already running may have started before the caller's commit: it waits for the next.
      next.push(done);
      if (!inFlight) start();
    },
    failure: () => failed,
    close() {
      closed = true;
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
