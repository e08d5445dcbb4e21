#!/usr/bin/env bash
# `npm test`: everything a fresh clone needs, then typecheck, lint and the whole test suite
# against the real stack (Kafka, Postgres, Redis, chDB). Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/ensure-deps.sh
bash deploy/up.sh
npx tsc -p tsconfig.json
npx eslint .
npx vitest run "$@"
