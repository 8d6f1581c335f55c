#!/usr/bin/env bash
# `npm test`: the whole suite. Makes sure Redis is reachable (starting or installing it), checks
# the migrations against the schema, type-checks, checks for import cycles, then runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" DATA_DIR="${TMPDIR:-/tmp}/switchboard-test-redis" bash scripts/ensure-redis.sh --install
npx drizzle-kit check
npx tsc --noEmit -p .
npx tsx scripts/check-cycles.ts
npx vitest run "$@"
