#!/usr/bin/env bash
# Apache Kafka (KRaft, single node) for the agent's Kafka tests: the broker's jars from Maven
# Central, resolved by Maven from infra/kafka/pom.xml into ~/.cache/edgemesh/kafka/libs. Needs
# Java 17+ and Maven (Debian: openjdk-17-jre-headless maven). Idempotent: a filled cache is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${EDGEMESH_CACHE:-$HOME/.cache/edgemesh}/kafka"
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' infra/kafka/pom.xml)
if [ -f "$CACHE/libs/kafka_2.13-$VERSION.jar" ]; then
  echo "== kafka $VERSION already in $CACHE"
  exit 0
fi
command -v java >/dev/null || { echo "install-kafka: no java on PATH (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "install-kafka: no mvn on PATH (apt-get install maven)" >&2; exit 1; }
echo "== resolving kafka $VERSION from Maven Central into $CACHE/libs"
mkdir -p "$CACHE"
rm -rf "$CACHE/libs.tmp"
mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
  -DoutputDirectory="$CACHE/libs.tmp" -DincludeScope=runtime
rm -rf "$CACHE/libs"
mv "$CACHE/libs.tmp" "$CACHE/libs"
echo "== kafka $VERSION: $(ls "$CACHE/libs" | wc -l) jars in $CACHE/libs"
