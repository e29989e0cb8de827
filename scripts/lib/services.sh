# The real services the tests use — ONE list, sourced by scripts/test.sh and .ci/run so the two
# cannot drift. Defines EDGEMESH_APT_PACKAGES and install_services.
#
# Debian packages (Node itself comes from the npm registry through scripts/env.sh):
# chromium: the dashboard's browser tests (test/browser/) drive it through playwright-core.
# postgresql: the series suite starts its own throwaway cluster from the package's binaries (the
#   package's own cluster is never used).
# python3-paho-mqtt, python3-venv: the MQTT gateway's second real client (test/node/mqtt-paho.test.ts);
#   python3-venv also holds MLServer's venv.
# mosquitto: the reference broker of bench/mqtt.ts, and the LAN broker of the agent's tests
#   (test/node/agent-*.test.ts).
# openjdk-17-jre-headless, maven: the Kafka broker of the agent's tests (scripts/install-kafka.sh).
# redis-server: the inference cache's Redis behind the Upstash REST adapter (test/node/ai-inference.test.ts).
EDGEMESH_APT_PACKAGES=(chromium postgresql python3-paho-mqtt python3-venv mosquitto openjdk-17-jre-headless maven redis-server)

# Then, into the cache (~/.cache/edgemesh), each idempotent:
# install-versitygw.sh: the S3-protocol server of the archive tool's tests (Versity's gateway, a Go
#   module built by the machine's Go; Debian's golang-go is too old for it).
# install-kafka.sh: Apache Kafka (KRaft) jars from Maven Central via Maven (needs the Java and Maven above).
# install-mlserver.sh: the KServe v2 model server of the inference tests and bench/flows.ts (pip, in a venv).
EDGEMESH_SERVICE_STEPS=(install-versitygw.sh install-kafka.sh install-mlserver.sh)

# install_services [--strict]
# Installs what is missing: the Debian packages with apt-get when running as root, then the cache
# steps. With --strict (CI) anything that cannot be installed fails; without, it is named loudly
# with the command that installs it, and the tests that need it will fail or skip.
install_services() {
  local strict=false problems=0 missing=() p step
  [ "${1:-}" = "--strict" ] && strict=true
  for p in "${EDGEMESH_APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "== apt-get install ${missing[*]}"
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        echo "apt-get could not install ${missing[*]}" >&2
        problems=$((problems + 1))
      fi
    else
      echo "WARNING: missing Debian packages the tests use: ${missing[*]} — as root: apt-get update && apt-get install -y ${missing[*]}" >&2
      problems=$((problems + 1))
    fi
  fi
  for step in "${EDGEMESH_SERVICE_STEPS[@]}"; do
    if ! bash "scripts/$step" >/dev/null; then
      echo "WARNING: scripts/$step failed (rerun it to see why); the tests that use it cannot run" >&2
      problems=$((problems + 1))
    fi
  done
  if [ "$problems" -gt 0 ] && [ "$strict" = true ]; then
    echo "CI: every service the tests use must be installed ($problems step(s) failed above)" >&2
    return 1
  fi
  return 0
}
