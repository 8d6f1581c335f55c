import type { z } from 'zod';
import { AppError, validationFromIssues } from '../errors.js';
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
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw validationFromIssues(parsed.error.issues);
  return parsed.data;
}

/** Validates query parameters. */
export function readQuery<S extends z.ZodType>(c: AppContext, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw validationFromIssues(parsed.error.issues);
  return parsed.data;
}
