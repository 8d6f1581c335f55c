import { closeSync, fdatasync, fstatSync, openSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';

/**
 * Makes a WAL-mode database's commits durable off the event loop: `fdatasync` of the WAL file on
 * libuv's threadpool. Commits made with `synchronous = NORMAL` are in the WAL (in the OS page
 * cache) but not yet on disk; one sync after them makes them durable, because SQLite only appends
 * to the WAL (or, after a checkpoint that copied everything, rewrites it from its start) and an
 * fdatasync covers every page of the file written before it.
 */
export interface WalSync {
  /** Calls back once every commit made before the call is on disk (or with the error). */
  sync(done: (err: Error | null) => void): void;
  close(): void;
}

/** A WalSync for `sqlite`'s WAL file, or null when it has none (in memory, or not in WAL mode). */
export function createWalSync(sqlite: Database.Database): WalSync | null {
  if (sqlite.memory) return null;
  if (sqlite.pragma('journal_mode', { simple: true }) !== 'wal') return null;
  // Absolute now: DATA_DIR may be relative, and the file is opened at the first sync.
  const walPath = path.resolve(`${sqlite.name}-wal`);
  let fd: number | null = null;
  return {
    sync(done) {
      try {
        // SQLite deletes the WAL only when its last connection closes; should it ever be
        // recreated, the descriptor of the unlinked file would sync nothing that matters.
        if (fd !== null && fstatSync(fd).nlink === 0) {
          closeSync(fd);
          fd = null;
        }
        fd ??= openSync(walPath, 'r');
      } catch (err) {
        done(err as Error);
        return;
      }
      fdatasync(fd, (err) => done(err));
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
