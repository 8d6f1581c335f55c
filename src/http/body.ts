import type { z } from 'zod';
import { AppError, validationFromIssues } from '../errors.js';
import { clip, MAX_DETAILS_DEPTH, pathDeeperThan } from '../providers/helpers.js';
import type { AppContext } from './types.js';

/** Reads a JSON body and validates it; problem+json with the field at fault on failure. */
export async function readJson<S extends z.ZodType>(c: AppContext, schema: S): Promise<z.infer<S>> {
  const type = c.req.header('Content-Type') ?? '';
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new AppError('unsupported_media_type', 'Content-Type must be application/json');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await c.req.text());
  } catch {
    throw new AppError('invalid_json', 'Request body is not valid JSON', [{ field: '(body)', message: 'not valid JSON' }]);
  }
  // Before anything walks it recursively (schemas, structuredClone, JSON.stringify when stored):
  // a body nested thousands of levels deep overflowed the stack there (a 500).
  const deep = pathDeeperThan(raw, MAX_BODY_DEPTH);
  if (deep !== null) throw AppError.validation(clip(deep, 200), `nests more than ${MAX_BODY_DEPTH} levels deep`);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw validationFromIssues(parsed.error.issues);
  return parsed.data;
}

/** How deep an API body may nest; the deepest real one (a template's components) needs about six. */
export const MAX_BODY_DEPTH = MAX_DETAILS_DEPTH;

/** Validates query parameters. */
export function readQuery<S extends z.ZodType>(c: AppContext, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw validationFromIssues(parsed.error.issues);
  return parsed.data;
}
