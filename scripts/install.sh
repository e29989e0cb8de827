#!/usr/bin/env bash
# Installs the npm packages when they are missing or older than the lock file.
#
# `npm install` rather than `npm ci`: the lock file cannot list the other platforms' optional
# binaries (biome, workerd for macOS/Windows) because the registry this project is built against
# does not serve them, and `npm ci` refuses a lock file without them. `npm install` honours every
# version the lock file pins and leaves it unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm packages"
  npm install --no-audit --no-fund --loglevel=error
fi
