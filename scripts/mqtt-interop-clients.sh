#!/usr/bin/env bash
# The independent MQTT clients of the interop tests (test/node/mqtt-*.test.ts, docs/mqtt.md):
# Debian's mosquitto_pub / mosquitto_sub (package mosquitto-clients), and Eclipse Paho for Python
# >= 2 (callback API v2) from PyPI in a venv at ~/.cache/edgemesh/paho-venv (Debian bookworm's
# python3-paho-mqtt is 1.6). Idempotent; .ci/run runs it before the node tests.
set -euo pipefail

if ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends mosquitto-clients
  else
    sudo apt-get install -y --no-install-recommends mosquitto-clients
  fi
fi

venv="${HOME}/.cache/edgemesh/paho-venv"
if ! "$venv/bin/python" -c 'import sys, paho.mqtt; sys.exit(int(paho.mqtt.__version__.split(".")[0]) < 2)' 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "paho-mqtt>=2,<3"
fi
"$venv/bin/python" -c 'import paho.mqtt; print("paho-mqtt", paho.mqtt.__version__)'
command -v mosquitto_pub mosquitto_sub
