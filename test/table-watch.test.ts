import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { watchTable } from '../src/db/table-watch.js';
import { useTempSqliteFile } from './harness.js';

const sqlite = useTempSqliteFile('watch.sqlite', 'CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');

describe('table watch', () => {
  it("counts this connection's writes (rolled back ones too) and sees other connections' commits", () => {
    const watch = watchTable(sqlite.db, 't');
    const other = new Database(sqlite.file);
    try {
      const local0 = watch.localWrites();
      const other0 = watch.otherCommits();
      sqlite.db.prepare('INSERT INTO t VALUES (?, ?)').run('a', 1);
      expect(watch.localWrites()).toBe(local0 + 1);
      sqlite.db.prepare('UPDATE t SET v = 2').run();
      sqlite.db.prepare('DELETE FROM t').run();
      expect(watch.localWrites()).toBe(local0 + 3);
      expect(() =>
        sqlite.db.transaction(() => {
          sqlite.db.prepare('INSERT INTO t VALUES (?, ?)').run('b', 1);
          throw new Error('roll back');
        })(),
      ).toThrow('roll back');
      expect(watch.localWrites()).toBe(local0 + 4);
      expect(watch.otherCommits()).toBe(other0); // own commits do not count as others'

      other.prepare('INSERT INTO t VALUES (?, ?)').run('c', 1);
      expect(watch.otherCommits()).not.toBe(other0);
      expect(watch.localWrites()).toBe(local0 + 4);
      // Writes to other tables do not count as this table's.
      sqlite.db.exec('CREATE TABLE u (x)');
      sqlite.db.prepare('INSERT INTO u VALUES (1)').run();
      expect(watch.localWrites()).toBe(local0 + 4);
    } finally {
      other.close();
    }
  });

  it('refuses a table name that is not a plain identifier', () => {
    expect(() => watchTable(sqlite.db, 't; DROP TABLE t')).toThrow(/bad table name/);
  });
});
