# Sourced by every project script: Node 24 on PATH, and no call-outs from local tooling
# (wrangler's usage metrics, miniflare's download of request.cf data): local runs and tests
# must not reach other hosts.
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$_here/node24.sh" || return 1
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export NO_UPDATE_NOTIFIER=1
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false
unset _here
