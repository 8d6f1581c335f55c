import { AppError } from '../errors.js';

/** Keyset pagination shared by list endpoints ordered by (createdAt desc, id desc). */

export interface Page<T> {
  data: T[];
  /** Pass as `cursor` to get the next (older) page; null at the end. */
  nextCursor: string | null;
}

export function encodeCursor(createdAt: number, id: string): string {
  return btoa(`${createdAt}:${id}`).replaceAll('=', '');
}

export function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [ts, id] = atob(cursor).split(':');
    const createdAt = Number(ts);
    if (!id || !Number.isSafeInteger(createdAt)) throw new Error('bad');
    return { createdAt, id };
  } catch {
    throw AppError.validation('cursor', 'is not a cursor this API returned');
  }
}

/** Turns `limit + 1` fetched rows into a page and the cursor of its last row. */
export function toPage<R extends { createdAt: number; id: string }, V>(rows: R[], limit: number, view: (r: R) => V): Page<V> {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    data: page.map(view),
    nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
  };
}
