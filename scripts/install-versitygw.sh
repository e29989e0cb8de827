#!/usr/bin/env bash
# Builds the S3-protocol server that the archive tool's tests run against: Versity's S3 gateway
# (versitygw), a real S3 implementation (SigV4 auth, ListObjectsV2, conditional writes) over a
# plain folder. No Debian package carries an S3 server, so it is built from the Go module proxy,
# once, into the cache (a few minutes on two cores; then instant). Needs Go >= 1.21 on PATH (Go's
# automatic toolchain fetches the version versitygw asks for). Prints the binary's path.
set -euo pipefail
version="${EDGEMESH_VERSITYGW_VERSION:-v1.8.0}"
cache="${EDGEMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgemesh}"
bin="$cache/versitygw-$version/bin"
if [ ! -x "$bin/versitygw" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "edgemesh: building versitygw needs Go >= 1.21 on PATH (https://go.dev/doc/install); none found" >&2
    exit 1
  fi
  echo "edgemesh: building versitygw $version into $bin (once; a few minutes)" >&2
  rm -rf "$bin.tmp"
  GOBIN="$bin.tmp" GOFLAGS="-trimpath" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
    go install -ldflags="-s -w" "github.com/versity/versitygw/cmd/versitygw@$version" >&2
  mv "$bin.tmp" "$bin"
fi
echo "$bin/versitygw"
