#!/usr/bin/env bash
# Starts the national topology on one machine, each node a separate process with its own data directory, so a
# newcomer can watch it (docs/topology.md):
#
# - the province hub `shaanxi` (`unsilo serve`, TLS on 127.0.0.1:8443), its certificate from a throw-away CA made
#   here, with edge `qinwuyuan-edge` (秦务员前置机) taking the 秦务员 platform's pushes on 127.0.0.1:9082;
# - the county hub `hanyin` (TLS on 127.0.0.1:8444), a member of the province (级联), with two department edges:
#   `civil-edge` (民政局前置机) watching a folder the dept-file simulator drops GBK CSV and XLSX rosters into, and
#   `grid-edge` (网格中心前置机) taking the grid platform's pushes on 127.0.0.1:9081;
# - the county hub `shiquan` (HTTP on 127.0.0.1:8081), the other member;
# - every node registered by its parent's system administrator and enrolled with a one-time code; the edges run
#   the definitions their hub pushed (signed);
# - up: the province's health commission requests 汉阴's civil-affairs rosters (residents), 汉阴's security administrators decide
#   it, and the records flow up to the province's pull subscription;
# - back down (回流): 石泉's grid platform requests the province's 秦务员 cases, the province decides it, and the
#   cases flow down to 石泉's pull subscription.
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
for t in system security security2 audit grid-push qinwuyuan-push; do token "$t"; done
# One [[admin.operators]] table per "name role token-file" argument.
operators() {
  for o in "$@"; do
    set -- $o
    printf '[[admin.operators]]\nname = "%s"\nrole = "%s"\ntoken_sha256 = "%s"\n' "$1" "$2" "$(digest "$3")"
  done
}

# A hub's configuration: hub.toml in directory $1, listening on $2 (https with the demo certificate, or http),
# chain id $3, then whatever else follows on standard input.
hub_config() {
  local d=$1 listen=$2 id=$3 tls=$4
  mkdir -p "$d"
  {
    printf '[hub]\nid = "%s"\n[http]\nlisten = "%s"\n' "$id" "$listen"
    if [ "$tls" = tls ]; then printf '[http.tls]\ncert = "%s/hub.pem"\nkey = "%s/hub.key"\n' "$dir" "$dir"; fi
    printf '[bus]\nkind = "embedded"\n[bus.embedded]\ndata_dir = "data"\n'
    printf '[admin.sign_in]\nsecond_factor = "none"\napi_second_factor = false\n'
    printf '[policy]\nlinked_hub_clearance = "S2"\n'
    operators "sysadmin system system" "secadmin security security" "secadmin2 security security2" "auditor audit audit"
    cat
  } > "$d/hub.toml"
}
# Starts the hub in directory $1 (log $1.log) and waits until $2 answers /readyz.
start_hub() {
  (cd "$1" && exec "$unsilo" serve --config hub.toml > "../$1.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 1 150); do curl -sf --cacert ca.pem "$2/readyz" >/dev/null && return; sleep 0.2; done
  echo "topology-demo: hub $1 did not start; see $dir/$1.log" >&2
  exit 1
}
# Calls the admin API: api METHOD URL TOKEN-FILE [JSON-BODY]; prints the answer.
api() {
  local body=()
  [ $# -ge 4 ] && body=(--data "$4")
  curl -s --cacert ca.pem -X "$1" -H "Authorization: Bearer $(cat "$3.token")" -H 'Content-Type: application/json' \
    "${body[@]}" "$2"
}
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print($1)"; }

province=https://127.0.0.1:8443
hanyin=https://127.0.0.1:8444
shiquan=http://127.0.0.1:8081
hub_config province 127.0.0.1:8443 shaanxi tls < /dev/null
start_hub province "$province"

# --- The members: registered at the province, enrolled with one-time codes, their parent link configured.
member() {
  local d=$1 listen=$2 id=$3 tls=$4 node=$5 description=$6
  hub_config "$d" "$listen" "$id" "$tls" <<TOML
[parent]
hub = "$province"
hub_ca = "$dir/ca.pem"
id = "$node"
report_every = "2s"
TOML
  if [ ! -f "$d/data/parent/enrolment.json" ]; then
    code=$("$unsilo" edges --hub "$province" --ca-file ca.pem --token "$(cat system.token)" \
      add "$node" --kind member-hub --description "$description" | json 'v["enrolment_code"]')
    (cd "$d" && "$unsilo" parent enrol --config hub.toml --code "$code" >/dev/null)
  fi
}
member hanyin 127.0.0.1:8444 hanyin tls county-hanyin "汉阴县政务数据共享交换平台 / Hanyin county hub"
member shiquan 127.0.0.1:8081 shiquan plain county-shiquan "石泉县政务数据共享交换平台 / Shiquan county hub"
start_hub hanyin "$hanyin"
start_hub shiquan "$shiquan"

# --- The edges: registered at their hub, enrolled (one-time codes), running the definitions the hub pushed.
mkdir -p civil-drop
edge() {
  local id=$1 hub=$2 description=$3 connector=$4 definition=$5
  cat > "$id.toml"
  if [ ! -f "$id-data/link/enrolment.json" ]; then
    code=$("$unsilo" edges --hub "$hub" --ca-file ca.pem --token "$(cat system.token)" \
      add "$id" --description "$description" | json 'v["enrolment_code"]')
    "$unsilo" edge --config "$id.toml" enrol --code "$code" >/dev/null 2>&1
  fi
  "$unsilo" edges --hub "$hub" --ca-file ca.pem --token "$(cat system.token)" push "$id" "$connector" "$definition" >/dev/null
  "$unsilo" edge --config "$id.toml" > "$id.log" 2>&1 &
  pids+=($!)
}
edge civil-edge "$hanyin" "民政局前置机 / civil affairs" civil-rosters builtin:dept-file <<TOML
[edge]
id = "civil-edge"
data_dir = "civil-edge-data"
[link]
hub = "$hanyin"
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
edge grid-edge "$hanyin" "网格中心前置机 / grid centre" grid builtin:grid <<TOML
[edge]
id = "grid-edge"
data_dir = "grid-edge-data"
listen = "127.0.0.1:9081"
[link]
hub = "$hanyin"
hub_ca = "ca.pem"
[[connectors]]
name = "grid"
transport = "http_push"
[connectors.http_push]
token_sha256 = "$(digest grid-push)"
TOML
edge qinwuyuan-edge "$province" "秦务员前置机 / Qinwuyuan platform" qinwuyuan builtin:qinwuyuan <<TOML
[edge]
id = "qinwuyuan-edge"
data_dir = "qinwuyuan-edge-data"
listen = "127.0.0.1:9082"
[link]
hub = "$province"
hub_ca = "ca.pem"
[[connectors]]
name = "qinwuyuan"
transport = "http_push"
[connectors.http_push]
token_sha256 = "$(digest qinwuyuan-push)"
TOML

# --- Requests across the cascade. Each waits until the linked hub's catalogue has arrived, then until the
# request reaches the hub that holds the data, whose two security administrators approve it (双人复核).
agency() { # agency HUB ID NAME USCC -> writes ID.token
  [ -f "$2.token" ] && return
  api POST "$1/admin/agencies" security "{\"id\":\"$2\",\"name\":\"$3\",\"uscc\":\"$4\",\"clearance\":\"S2\"}" \
    | json 'v["token"]' > "$2.token"
  chmod 600 "$2.token"
}
cross_request() { # cross_request FROM-HUB HELD-AT DECIDING-HUB AGENCY BODY
  local from=$1 at=$2 decider=$3 who=$4 body=$5 name
  name=$(printf %s "$body" | json 'v["name"]')
  for _ in $(seq 1 100); do
    [ "$(api GET "$from/admin/hubs/catalogue" "$who" | json "any(c['hub'] == '$at' for c in v.get('hubs', []))")" = True ] && break
    sleep 0.3
  done
  api POST "$from/admin/hubs/$at/subscriptions" "$who" "$body" >/dev/null
  for _ in $(seq 1 100); do
    held=$(api GET "$decider/admin/subscriptions?status=requested" security \
      | json "next((s['id'] for s in v['subscriptions'] if s['name']=='$name'), '')")
    [ -n "$held" ] && break
    sleep 0.3
  done
  [ -n "$held" ] || { echo "topology-demo: request $name did not reach $decider" >&2; return; }
  api POST "$decider/admin/subscriptions/$held/approve" security '{}' >/dev/null
  api POST "$decider/admin/subscriptions/$held/approve" security2 '{}' >/dev/null
}
expires='"expires_at": "2030-12-31T23:59:59+08:00", "channel": {"kind": "pull"}'
agency "$province" health "陕西省卫生健康委员会" 116109210160500883
agency "$shiquan" grid-platform "石泉县网格化服务管理中心" 11610921016050046Q
cross_request "$province" county-hanyin "$hanyin" health "{\"name\": \"county-rosters\", \"schema\": \"resident\",
  \"fields\": [{\"field\": \"village_code\", \"treatment\": \"clear\"}, {\"field\": \"grid_code\", \"treatment\": \"clear\"},
               {\"field\": \"population_type\", \"treatment\": \"clear\"}, {\"field\": \"status\", \"treatment\": \"clear\"}],
  \"purpose\": \"重点人群健康服务覆盖统计\", \"legal_basis\": \"《基本医疗卫生与健康促进法》\", \"scenario\": \"按村统计重点人群签约覆盖\",
  \"scope\": \"汉阴县民政名册上的人员\", \"backfill_from\": \"2020-01-01T00:00:00+08:00\", $expires}" &
requests=($!)
cross_request "$shiquan" parent "$province" grid-platform "{\"name\": \"province-cases\", \"schema\": \"service_case\",
  \"fields\": [{\"field\": \"case_no\", \"treatment\": \"clear\"}, {\"field\": \"item_name\", \"treatment\": \"clear\"},
               {\"field\": \"status\", \"treatment\": \"clear\"}, {\"field\": \"accept_org_name\", \"treatment\": \"clear\"}],
  \"purpose\": \"网格员跟进群众办件\", \"legal_basis\": \"《政务数据共享条例》第二十四条\", \"scenario\": \"办件回流到网格\",
  \"scope\": \"石泉县群众的办件\", \"backfill_from\": \"2020-01-01T00:00:00+08:00\", $expires}" &
requests+=($!)
sleep 2
# --- The source systems behind the edges.
"$unsilo" simulate --rate 5 dept-file --dir "$dir/civil-drop" > civil-sim.log 2>&1 &
pids+=($!)
"$unsilo" simulate --rate 10 grid --hub http://127.0.0.1:9081 --token "$(cat grid-push.token)" > grid-sim.log 2>&1 &
pids+=($!)
"$unsilo" simulate --rate 5 qinwuyuan --hub http://127.0.0.1:9082 --token "$(cat qinwuyuan-push.token)" > qinwuyuan-sim.log 2>&1 &
pids+=($!)
wait "${requests[@]}" 2>/dev/null || true

cat <<TXT

unsilo topology demo — a province hub, two county hubs below it and three edges, each its own process ($dir)

  province     $province/console/edges   its edge and its two member hubs (trust $dir/ca.pem)
  汉阴 county   $hanyin/console/edges   its two edges and its link to the province
  石泉 county   $shiquan/console/edges   its link to the province
  sign in as   sysadmin (system), secadmin (security), auditor (audit) with the tokens in $dir/*.token
  up           the province's health commission pulls 汉阴's rosters:
               curl --cacert $dir/ca.pem -H "Authorization: Bearer \$(cat $dir/health.token)" $province/v1/subscriptions/health.county-rosters/records
  back down    石泉's grid platform pulls the province's 秦务员 cases:
               curl -H "Authorization: Bearer \$(cat $dir/grid-platform.token)" $shiquan/v1/subscriptions/grid-platform.province-cases/records
  evidence     each hub's audit log (auditor): link.send, link.receive and link.acknowledged entries name each other
  logs         $dir/province.log, hanyin.log, shiquan.log, civil-edge.log, grid-edge.log, qinwuyuan-edge.log

Stop a county hub for a while (kill its process) and start it again: its edges buffer, its parent link resumes,
nothing lost, nothing twice. Ctrl-C stops everything.
TXT
wait
