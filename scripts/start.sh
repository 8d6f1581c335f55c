#!/usr/bin/env bash
# `npm start`: build if the sources changed, make sure Redis is there, run the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-if-stale.sh
# Webhooks are still accepted and stored without Redis; queued work flows once it is reachable.
bash scripts/ensure-redis.sh || echo "continuing without Redis: webhooks are stored; distribution and deliveries wait for it" >&2
exec node --max-semi-space-size=32 dist/src/server.js
