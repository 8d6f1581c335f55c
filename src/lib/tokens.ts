/**
 * What an agent's bearer token starts with: the auth middleware checks such a token only against
 * agents' token hashes, so the admin token may not start with it (config.ts refuses one that does).
 */
export const AGENT_TOKEN_PREFIX = 'sbat_';
