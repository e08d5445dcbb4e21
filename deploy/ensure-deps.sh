# Sourced: installs the locked dependencies when node_modules is missing or older than the lockfile.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "[deploy] installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
