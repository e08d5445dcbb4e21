# Sourced: installs the locked dependencies when node_modules is missing or older than the lockfile.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "[deploy] installing dependencies (npm ci)"
  # Some registries lack optional platform builds (e.g. rollup's for other OSes) that npm ci
  # insists on finding in the lockfile; npm install resolves the same locked versions without them.
  npm ci --no-audit --no-fund || {
    echo "[deploy] npm ci refused the lockfile; installing with npm install instead"
    npm install --no-audit --no-fund
  }
fi
