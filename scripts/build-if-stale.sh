#!/usr/bin/env bash
# Compiles src/ to dist/ when any source is newer than the last build (npm start, benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src migrations package.json tsconfig.json tsconfig.build.json -newer "$stamp" -print -quit)" ]; then
  echo "building…" >&2
  npx tsc -p tsconfig.build.json
  touch "$stamp"
fi
