import type Database from 'better-sqlite3';

/**
 * Runs work on a connection at `synchronous = NORMAL`: in WAL mode its commits go into the WAL
 * without an fsync (no risk of corruption, only of losing those commits to a power cut until a
 * later sync), then the connection's own setting is put back before anything else runs. On a
 * connection already at NORMAL or OFF the work simply runs.
 *
 * Switched with exec, not prepared statements: SQLite applies a PRAGMA when it compiles it, so a
 * prepared one would do nothing on its first run.
 */
export interface RelaxedSync {
  /** The connection's own setting syncs at every commit (FULL or EXTRA). */
  readonly syncsEachCommit: boolean;
  run<T>(work: () => T): T;
}

export function relaxedSync(sqlite: Database.Database): RelaxedSync {
  const level = sqlite.pragma('synchronous', { simple: true }) as number;
  const syncsEachCommit = level >= 2;
  return {
    syncsEachCommit,
    run(work) {
      if (!syncsEachCommit) return work();
      sqlite.exec('PRAGMA synchronous = NORMAL');
      try {
        return work();
      } finally {
        sqlite.exec(`PRAGMA synchronous = ${level}`);
      }
    },
  };
}
