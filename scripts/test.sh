#!/usr/bin/env bash
# The test command of the README: installs what is missing, then lint, types, and every test
# (inside workerd, in Node, and the dashboard in Debian's chromium; the series suite also against
# a throwaway PostgreSQL when the machine has the postgresql package). Prints a closing
# "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bash scripts/install.sh
# Every service the tests use (Debian packages as root, then the cache steps): the one list in
# scripts/lib/services.sh, shared with .ci/run. Under CI=true anything missing fails here.
. scripts/lib/services.sh
if [ "${CI:-}" = "true" ]; then install_services --strict; else install_services; fi

# The dashboard's static assets: the Worker's [assets] directory must exist before wrangler or
# the workers project reads wrangler.toml, and the browser tests serve them.
echo "== dashboard (web/ → web/dist)"
node scripts/build-web.ts

echo "== lint and format (biome)"
npx biome check .
echo "== types (tsc, strict)"
npx wrangler types --check >/dev/null 2>&1 || { echo "worker-configuration.d.ts is stale: run 'npx wrangler types' and commit it" >&2; exit 1; }
npx tsc -p .
npx tsc -p web
npx tsc -p test/browser
npx tsc -p tsconfig.node.json
npx tsc -p test/fuzz

# The browser tests drive Debian's chromium (installed above from the services list). Skipped
# only when the arguments pick other tests (the browser tests themselves fail loudly too).
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
needs_chromium=true
if [ $# -gt 0 ]; then
  needs_chromium=false
  for arg in "$@"; do case "$arg" in *browser*) needs_chromium=true ;; esac; done
fi
if [ "$needs_chromium" = true ] && [ ! -x "$CHROMIUM" ]; then
  {
    echo
    echo "  ✗ The dashboard's browser tests need Debian's chromium at $CHROMIUM, and it is missing."
    echo "    Install it (as root):  apt-get update && apt-get install -y chromium"
    echo "    or point CHROMIUM_PATH at another Chromium. scripts/lib/services.sh lists what the tests use."
    echo
  } >&2
  exit 1
fi

echo "== tests (vitest: workers, node and browser projects)"
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@" || status=$?
# vitest.config.ts leaves the workers-postgres project out when PostgreSQL is missing (and fails
# under CI=true): say so beside the closing line, where it is read.
if [ -z "${EDGEMESH_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "SKIPPED: no PostgreSQL — the series suite ran against D1 only (apt-get install postgresql)"
fi
node scripts/lib/test-summary.ts test-results/vitest.json || status=$((status == 0 ? 1 : status))
# The logs the tests provoke on purpose (rejections, dead letters, retries) were kept out of the way.
[ -s test-results/test-output.log ] && echo "(expected log output of the tests: test-results/test-output.log)"
exit "$status"
