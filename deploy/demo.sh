#!/usr/bin/env bash
# `npm run demo`: install, bring the stack up, migrate, run the pipeline on a sample workload.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/ensure-deps.sh
bash deploy/up.sh
exec node --import tsx deploy/demo.ts
