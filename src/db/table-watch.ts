import type Database from 'better-sqlite3';

/**
 * "Has this table possibly changed since I last looked?", cheaply, for an in-memory cache over
 * one SQLite connection. Two sources of change:
 *  - this connection's own writes: temp triggers (they live only on this connection, never in the
 *    schema) call a JS function that bumps a counter on every insert, update or delete;
 *  - any other connection or process: `PRAGMA data_version` moves whenever one of them commits.
 * Both unchanged since a cache was filled means no row of the table can have changed in between.
 * A write that rolls back still counts (one needless cache refill, never a stale hit).
 */
export interface TableWatch {
  /** Counts this connection's own writes to the table; no I/O. */
  localWrites(): number;
  /** `PRAGMA data_version`: moves when another connection commits. A read transaction (two fcntl calls). */
  otherCommits(): number;
}

/** Per connection: write counts by table name (the connection's temp triggers feed them). */
const byConnection = new WeakMap<Database.Database, Map<string, number>>();

export function watchTable(sqlite: Database.Database, table: string): TableWatch {
  if (!/^[a-z_][a-z0-9_]*$/.test(table)) throw new Error(`watchTable: bad table name ${table}`);
  let counters = byConnection.get(sqlite);
  if (!counters) {
    const created = new Map<string, number>();
    byConnection.set(sqlite, (counters = created));
    sqlite.function('sb_table_changed', { deterministic: false }, (name: unknown) => {
      created.set(String(name), (created.get(String(name)) ?? 0) + 1);
      return null;
    });
  }
  if (!counters.has(table)) {
    counters.set(table, 0);
    for (const op of ['INSERT', 'UPDATE', 'DELETE']) {
      sqlite.exec(
        `CREATE TEMP TRIGGER IF NOT EXISTS sb_watch_${table}_${op.toLowerCase()} AFTER ${op} ON main.${table} ` +
          `BEGIN SELECT sb_table_changed('${table}'); END`,
      );
    }
  }
  const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
  return {
    localWrites: () => counters.get(table)!,
    otherCommits: () => dataVersion.get() as number,
  };
}
