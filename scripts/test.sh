#!/usr/bin/env bash
# The test command of the README: installs what is missing, then lint, types, and every test
# (inside workerd and in Node). Prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bash scripts/install.sh
# The archive tool's tests run against a real S3 server (versitygw), built once into the cache.
if ! bash scripts/install-versitygw.sh >/dev/null; then
  if [ "${CI:-}" = "true" ]; then echo "versitygw could not be built: the archive tool cannot be tested" >&2; exit 1; fi
  echo "WARNING: versitygw could not be built; the archive tool's tests will be SKIPPED" >&2
fi

echo "== lint and format (biome)"
npx biome check .
echo "== types (tsc, strict)"
npx wrangler types --check >/dev/null 2>&1 || { echo "worker-configuration.d.ts is stale: run 'npx wrangler types' and commit it" >&2; exit 1; }
npx tsc -p .
npx tsc -p tsconfig.node.json

echo "== tests (vitest: workerd and node projects)"
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@" || status=$?
node scripts/lib/test-summary.ts test-results/vitest.json || status=$((status == 0 ? 1 : status))
exit "$status"
