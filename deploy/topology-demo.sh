#!/usr/bin/env bash
# Starts the hub-and-edges layout on one machine, each node a separate process with its own data directory, so a
# newcomer can watch it (docs/topology.md):
#
# - a hub (`unsilo serve`) with TLS on 127.0.0.1:8443, its certificate from a throw-away CA made here;
# - edge `civil-edge` (民政局前置机): watches a folder the dept-file simulator drops GBK CSV and XLSX rosters into;
# - edge `grid-edge` (网格中心前置机): takes the grid platform's pushes on 127.0.0.1:9081 (the grid simulator);
# - both registered by the hub's system administrator, enrolled with one-time codes, running the definitions the
#   hub pushed (signed), forwarding over the outbound link;
# - a county hub (`unsilo serve`, HTTP on 127.0.0.1:8081) that is a member of the first one (级联): enrolled the same
#   way (`unsilo parent enrol`), it publishes its resource catalogue upward.
#
# Usage: deploy/topology-demo.sh [DIR]   (default ./topology-demo; Ctrl-C stops everything)
#
# DEMO ONLY: the console takes an operator's token without a one-time code here (second_factor = "none"), so the
# layout can be watched at once. Production hubs keep the default (TOTP or a client certificate).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mkdir -p "${1:-./topology-demo}" && cd "${1:-./topology-demo}" && pwd)
cd "$root"
echo "topology-demo: building unsilo" >&2
cargo build --quiet --bin unsilo
unsilo="$root/target/debug/unsilo"
command -v openssl >/dev/null || { echo "topology-demo: openssl is needed to make the demo's certificates" >&2; exit 1; }
cd "$dir"
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

# --- A throw-away CA and the hub's server certificate for 127.0.0.1.
if [ ! -f hub.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 30 \
    -subj "/CN=unsilo topology demo CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout hub.key -out hub.csr \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf "subjectAltName=IP:127.0.0.1,DNS:localhost\n" > san.cnf
  openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out hub.pem -days 30 -extfile san.cnf 2>/dev/null
  chmod 600 ca.key hub.key
fi

# --- Operators' tokens (only their SHA-256 goes into the configuration).
token() { [ -f "$1.token" ] || openssl rand -hex 24 | sed 's/^/usk_/' > "$1.token"; chmod 600 "$1.token"; }
digest() { printf %s "$(cat "$1.token")" | sha256sum | cut -d' ' -f1; }
for t in system security security2 audit grid-push; do token "$t"; done
# One [[admin.operators]] table per "name role token-file" argument.
operators() {
  for o in "$@"; do
    set -- $o
    printf '[[admin.operators]]\nname = "%s"\nrole = "%s"\ntoken_sha256 = "%s"\n' "$1" "$2" "$(digest "$3")"
  done
}

cat > hub.toml <<TOML
[http]
listen = "127.0.0.1:8443"
[http.tls]
cert = "hub.pem"
key = "hub.key"
[bus]
kind = "embedded"
[bus.embedded]
data_dir = "hub-data"
[admin.sign_in]
second_factor = "none"
api_second_factor = false
$(operators "sysadmin system system" "secadmin security security" "secadmin2 security security2" "auditor audit audit")
TOML

"$unsilo" serve --config hub.toml > hub.log 2>&1 &
pids+=($!)
hub=https://127.0.0.1:8443
for _ in $(seq 1 100); do curl -sf --cacert ca.pem "$hub/readyz" >/dev/null && break; sleep 0.2; done
curl -sf --cacert ca.pem "$hub/readyz" >/dev/null || { echo "topology-demo: the hub did not start; see $dir/hub.log" >&2; exit 1; }
ops=(--hub "$hub" --ca-file ca.pem --token "$(cat system.token)")

# --- The edges' configurations.
mkdir -p civil-drop
cat > civil-edge.toml <<TOML
[edge]
id = "civil-edge"
data_dir = "civil-edge-data"
[link]
hub = "$hub"
hub_ca = "ca.pem"
max_bytes_per_second = 1000000
[buffer]
max_bytes = 100000000
[[connectors]]
name = "civil-rosters"
transport = "file_drop"
[connectors.file_drop]
dir = "$dir/civil-drop"
encoding = "gbk"
TOML
cat > grid-edge.toml <<TOML
[edge]
id = "grid-edge"
data_dir = "grid-edge-data"
listen = "127.0.0.1:9081"
[link]
hub = "$hub"
hub_ca = "ca.pem"
[[connectors]]
name = "grid"
transport = "http_push"
[connectors.http_push]
token_sha256 = "$(digest grid-push)"
TOML

# --- Register, enrol (one-time codes), push the definitions (signed by the hub).
enrol() {
  local edge=$1 description=$2
  if [ ! -f "$edge-data/link/enrolment.json" ]; then
    code=$("$unsilo" edges "${ops[@]}" add "$edge" --description "$description" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["enrolment_code"])')
    "$unsilo" edge --config "$edge.toml" enrol --code "$code" >/dev/null 2>&1
  fi
}
enrol civil-edge "民政局前置机 / civil affairs"
enrol grid-edge "网格中心前置机 / grid centre"
"$unsilo" edges "${ops[@]}" push civil-edge civil-rosters builtin:dept-file >/dev/null
"$unsilo" edges "${ops[@]}" push grid-edge grid builtin:grid >/dev/null

# --- A county hub, member of this one (级联): its own data directory, its own operators, its parent link.
mkdir -p county
cat > county/hub.toml <<TOML
[http]
listen = "127.0.0.1:8081"
[bus]
kind = "embedded"
[bus.embedded]
data_dir = "county-data"
[admin.sign_in]
second_factor = "none"
api_second_factor = false
$(operators "sysadmin system system" "auditor audit audit")
[parent]
hub = "$hub"
hub_ca = "$dir/ca.pem"
id = "county-hanyin"
report_every = "5s"
TOML
if [ ! -f county/county-data/parent/enrolment.json ]; then
  code=$("$unsilo" edges "${ops[@]}" add county-hanyin --kind member-hub --description "汉阴县平台 / county hub" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["enrolment_code"])')
  (cd county && "$unsilo" parent enrol --config hub.toml --code "$code" >/dev/null)
fi
(cd county && exec "$unsilo" serve --config hub.toml > ../county.log 2>&1) &
pids+=($!)

"$unsilo" edge --config civil-edge.toml > civil-edge.log 2>&1 &
pids+=($!)
"$unsilo" edge --config grid-edge.toml > grid-edge.log 2>&1 &
pids+=($!)
sleep 2
# --- The departments behind the edges.
"$unsilo" simulate --rate 5 dept-file --dir "$dir/civil-drop" > civil-sim.log 2>&1 &
pids+=($!)
"$unsilo" simulate --rate 10 grid --hub http://127.0.0.1:9081 --token "$(cat grid-push.token)" > grid-sim.log 2>&1 &
pids+=($!)

cat <<TXT

unsilo topology demo — a hub, two edge nodes and a county hub below it, each its own process ($dir)

  console      $hub/console/edges   (trust $dir/ca.pem, or accept the browser's warning)
  sign in as   sysadmin  with the token in $dir/system.token   (system administrator)
               auditor   with the token in $dir/audit.token    (audit administrator)
  edges        $unsilo edges --hub $hub --ca-file $dir/ca.pem --token \$(cat $dir/system.token) list
  county hub   http://127.0.0.1:8081/console/ (same tokens); its catalogue at the hub:
               curl --cacert $dir/ca.pem -H "Authorization: Bearer \$(cat $dir/system.token)" $hub/admin/members/catalogue
  logs         $dir/hub.log, civil-edge.log, grid-edge.log, county.log

Stop the hub for a while (kill its process) and start it again: the edges buffer and resume, nothing lost.
Ctrl-C stops everything.
TXT
wait
