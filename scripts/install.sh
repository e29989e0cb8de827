#!/usr/bin/env bash
# Installs the npm packages when they are missing or older than the lock file, leaving
# package-lock.json exactly as it was.
#
# Not `npm ci`: the lock file cannot list the other platforms' optional binaries (biome, workerd
# for macOS/Windows) because the registry this project is built against does not serve them, and
# `npm ci` refuses a lock file without them. `npm install --no-save` honours every version the
# lock file pins (the same tree `npm ci` would install here) and does not write the lock file;
# without --no-save npm would add those binaries to it and leave a fresh clone dirty. As a last
# guard the lock file is put back byte for byte if npm changed it anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm packages"
  saved="$(mktemp)"
  cp package-lock.json "$saved"
  status=0
  npm install --no-save --no-audit --no-fund --loglevel=error || status=$?
  if ! cmp -s "$saved" package-lock.json; then
    cp "$saved" package-lock.json
    echo "(npm changed package-lock.json; put back as it was)"
  fi
  rm -f "$saved"
  # npm leaves node_modules/.package-lock.json untouched when nothing was missing: mark it current.
  [ "$status" = 0 ] && touch node_modules/.package-lock.json
  exit "$status"
fi
