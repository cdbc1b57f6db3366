#!/usr/bin/env bash
# Runs every test of the workspace against real services, as CI does (.ci/run calls exactly this).
#
# - installs cargo-nextest if it is missing;
# - makes sure PostgreSQL and MariaDB answer on loopback (deploy/start-databases.sh starts or installs them);
# - installs the official Confluent Python client (pip) for the registry compatibility test;
# - installs Debian's chromium, chromium-driver and CJK fonts for the console's browser tests (tests/tests/console.rs);
# - installs schemathesis (pip) for the property-based test of the OpenAPI document (tests/tests/openapi.rs);
# - installs OpenAPI Generator (pip `openapi-generator-cli`, which carries its jar), a Java runtime (apt) when
#   missing, and the generated Python client's libraries, for the generated-client test (tests/tests/generated_client.rs);
# - installs gmssl (pip), an independent SM2 library, to verify exported audit checkpoints (tests/tests/security.rs);
# - installs and starts Tansu, a Kafka-protocol broker, on a free loopback port (deploy/start-tansu.sh) and
#   exports its address as UNSILO_TEST_KAFKA, so the Kafka tests run against it (they fail, never skip, without it);
# - runs the doc tests, then the whole workspace suite with nextest, with the `tlcp` feature (Tongsuo built from
#   source: needs a C compiler, make and perl, which it installs when missing);
# - stops the broker on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "run.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

"$root/deploy/start-databases.sh"

# Tongsuo (the TLCP listener) is built from source: a C compiler, make and perl.
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1 || ! command -v perl >/dev/null 2>&1; then
  echo "run.sh: installing build-essential and perl (apt) for Tongsuo" >&2
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -eq 0 ]; then apt-get update -q >/dev/null && apt-get install -y -q build-essential perl >/dev/null
  else sudo apt-get update -q >/dev/null && sudo apt-get install -y -q build-essential perl >/dev/null; fi
fi

# The official Confluent Python client, for the registry compatibility test (tests/tests/confluent_client.rs).
if ! python3 -c 'import confluent_kafka.schema_registry.avro, fastavro' 2>/dev/null; then
  echo "run.sh: installing the Confluent Python client (confluent-kafka, fastavro)" >&2
  python3 -m pip install --quiet --disable-pip-version-check "confluent-kafka[avro,schemaregistry]"
fi

# gmssl, an SM2/SM3 library the hub does not use, to verify exported audit checkpoints independently.
if ! python3 -c 'import gmssl.sm2' 2>/dev/null; then
  echo "run.sh: installing gmssl (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check gmssl
fi

# Schemathesis, which tries the hub's OpenAPI document against a live hub.
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "run.sh: installing schemathesis (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check schemathesis
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  hash -r
fi

# OpenAPI Generator, the standard client generator departments use, and what it needs: a Java runtime, and for the
# Python client it generates, urllib3, pydantic 2 and python-dateutil.
if ! command -v java >/dev/null 2>&1; then
  echo "run.sh: installing a Java runtime (apt) for OpenAPI Generator" >&2
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q default-jre-headless >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q default-jre-headless >/dev/null; }
  else sudo apt-get install -y -q default-jre-headless >/dev/null || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q default-jre-headless >/dev/null; }; fi
fi
if ! command -v openapi-generator-cli >/dev/null 2>&1 \
  || ! python3 -c 'import urllib3, pydantic, dateutil, typing_extensions; assert pydantic.VERSION >= "2"' 2>/dev/null; then
  echo "run.sh: installing openapi-generator-cli and the generated client's libraries (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check openapi-generator-cli urllib3 "pydantic>=2" python-dateutil typing-extensions
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  hash -r
fi

# Chromium and ChromeDriver for the console's browser tests, and fonts for its Chinese pages.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ ! -d /usr/share/fonts/opentype/noto ]; then
  echo "run.sh: installing chromium, chromium-driver and fonts-noto-cjk (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get install -y -q chromium chromium-driver fonts-noto-cjk >/dev/null \
    || { sudo_if_needed apt-get update -q >/dev/null && sudo_if_needed apt-get install -y -q chromium chromium-driver fonts-noto-cjk >/dev/null; }
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export TANSU_PORT=$port
export TANSU_PID_FILE="$root/.tansu/tansu-test-$port.pid"
cleanup() {
  if [ -f "$TANSU_PID_FILE" ]; then
    kill "$(cat "$TANSU_PID_FILE")" 2>/dev/null || true
    rm -f "$TANSU_PID_FILE"
  fi
}
trap cleanup EXIT
UNSILO_TEST_KAFKA=$("$root/deploy/start-tansu.sh")
export UNSILO_TEST_KAFKA
echo "run.sh: Kafka-protocol broker (Tansu) at $UNSILO_TEST_KAFKA" >&2

# Every test runs with the TLCP listener built in (Tongsuo, from source: tests/tlcp.rs of the hub crate). The same
# features for the doc tests, so the workspace is built once.
features=(--features unsilo-hub/tlcp,unsilo-cli/tlcp)
# Doc tests first, so the run closes on nextest's summary of the whole suite.
cargo test --workspace --doc --quiet "${features[@]}"
cargo nextest run --workspace --all-targets --no-fail-fast "${features[@]}" "$@"
