#!/usr/bin/env bash
# `npm test`: everything a fresh clone needs, then typecheck, lint and the whole test suite
# against the real stack (Kafka, Postgres, Redis, chDB). Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/ensure-deps.sh
# A Docker engine that answers gets the testcontainers stack (MS_TEST_STACK=local forces ours).
if [[ -z ${MS_TEST_STACK:-} ]] && command -v docker >/dev/null && timeout 5 docker info >/dev/null 2>&1; then
  export MS_TEST_STACK=docker
fi
[[ ${MS_TEST_STACK:-local} == docker ]] || bash deploy/up.sh
npx tsc -p tsconfig.json
npx eslint .
npx vitest run "$@"
