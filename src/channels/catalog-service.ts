import { asc, eq } from 'drizzle-orm';
import { chatbots, completionCodes } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../lib/ids.js';
import type { ServiceContext } from '../services.js';

/** Account-wide lists a channel refers to: completion codes and chatbots. */
export function createCatalogService(ctx: ServiceContext) {
  const { db, clock } = ctx;
  return {
    createCompletionCode(input: { code: string; label: string }) {
      const existing = db.select({ id: completionCodes.id }).from(completionCodes).where(eq(completionCodes.code, input.code)).get();
      if (existing) {
        throw new AppError('conflict', `Completion code ${input.code} already exists`, [{ field: 'code', message: 'already exists' }]);
      }
      const row = { id: newId('cc'), code: input.code, label: input.label, createdAt: clock.now() };
      db.insert(completionCodes).values(row).run();
      return row;
    },
    listCompletionCodes() {
      return db.select().from(completionCodes).orderBy(asc(completionCodes.code)).all();
    },
    createChatbot(input: { name: string; url: string }) {
      const row = { id: newId('cb'), name: input.name, url: input.url, createdAt: clock.now() };
      db.insert(chatbots).values(row).run();
      return row;
    },
    listChatbots() {
      return db.select().from(chatbots).orderBy(asc(chatbots.createdAt), asc(chatbots.id)).all();
    },
  };
}

export type CatalogService = ReturnType<typeof createCatalogService>;
