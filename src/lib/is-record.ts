/** A non-null, non-array object (as zod's z.object() requires): JSON's `{…}`, read field by field. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
