#!/usr/bin/env bash
# Quick start: the local edge (wrangler dev: Worker, D1, Durable Objects, Queues) with a simulated
# demo fleet posting readings, and curl examples to look at it. Ctrl-C stops everything gracefully:
# no new requests, the local queues drained (at most EDGEMESH_DRAIN_SECONDS, 60), then exit; a
# second Ctrl-C stops at once and loses what is still queued (docs/development.md). wrangler runs
# with a dev registry of its own (.wrangler/registry), so other local edges cannot reach it.
#
#   bash scripts/dev.sh                    # http://127.0.0.1:8787
#   PORT=8788 bash scripts/dev.sh          # another port
#   EDGEMESH_DEMO=0 bash scripts/dev.sh    # the edge only: no demo devices, no simulator
#   EDGEMESH_VERBOSE=1 bash scripts/dev.sh # also show the edge's own log
set -eo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "edgemesh dev: $*"; }
fail() {
  echo "edgemesh dev: $*" >&2
  exit 1
}

. scripts/env.sh || fail "could not put Node.js 24 on PATH (scripts/node24.sh installs it from the npm registry); check network access to the registry and rerun"

# Dependencies: installed when missing or when package-lock.json changed since the last install.
bash scripts/install.sh ||
  fail "installing dependencies failed (see above); check access to the npm registry, then rerun: bash scripts/dev.sh"

# Local secrets for wrangler dev (git-ignored). Created once, never overwritten.
if [ ! -e .dev.vars ]; then
  token="$(node -p 'require("node:crypto").randomBytes(32).toString("base64url")')"
  (
    umask 077
    printf '# Local secrets for `wrangler dev` (git-ignored; created by scripts/dev.sh).\nADMIN_TOKEN="%s"\n' "$token" >.dev.vars
  )
  unset token
  say "created .dev.vars with a random ADMIN_TOKEN"
elif ! grep -Eq '^[[:space:]]*(export[[:space:]]+)?ADMIN_TOKEN[[:space:]]*=' .dev.vars; then
  fail ".dev.vars exists but sets no ADMIN_TOKEN: add a line ADMIN_TOKEN=\"<a long random string>\", or delete the file so this script creates one"
fi
# JWT_SECRET signs dashboard logins; added to an older .dev.vars that lacks it (nothing else changes).
if ! grep -Eq '^[[:space:]]*(export[[:space:]]+)?JWT_SECRET[[:space:]]*=' .dev.vars; then
  printf 'JWT_SECRET="%s"\n' "$(node -p 'require("node:crypto").randomBytes(32).toString("base64url")')" >>.dev.vars
  say "added a random JWT_SECRET to .dev.vars"
fi
# METRICS_TOKEN lets a scraper read GET /metrics and nothing else.
if ! grep -Eq '^[[:space:]]*(export[[:space:]]+)?METRICS_TOKEN[[:space:]]*=' .dev.vars; then
  printf 'METRICS_TOKEN="%s"\n' "$(node -p 'require("node:crypto").randomBytes(24).toString("base64url")')" >>.dev.vars
  say "added a random METRICS_TOKEN to .dev.vars"
fi

exec node scripts/dev.ts "$@"
