#!/usr/bin/env bash
# `npm test`: everything a fresh clone needs, then the unit project (no services: fails fast, in
# seconds), typecheck and lint, and last the integration project against the real stack (Kafka,
# Postgres, Redis, chDB). Any failure fails the whole. Extra arguments go to one `vitest run` over
# both projects, after the stack is up (e.g. a file name).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/ensure-deps.sh
(( $# > 0 )) || npx vitest run --project unit
npx tsc -p tsconfig.json
npx eslint .
# A Docker engine that answers gets the testcontainers stack (MS_TEST_STACK=local forces ours).
if [[ -z ${MS_TEST_STACK:-} ]] && command -v docker >/dev/null && timeout 5 docker info >/dev/null 2>&1; then
  export MS_TEST_STACK=docker
fi
[[ ${MS_TEST_STACK:-local} == docker ]] || bash deploy/up.sh
if (( $# > 0 )); then
  npx vitest run "$@"
else
  npx vitest run --project integration
fi
