#!/usr/bin/env bash
# run.sh: builds clawpair in release mode and measures it (bench/README.md explains every figure).
# Prints a table and writes bench/results/latest.json.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/run.sh [options]
  --sizes "100 1000 10000"   population sizes (paired devices / held-open nodes)
  --openclaw-lab DIR         an OpenClaw lab directory (v<VERSION>/node_modules/openclaw and
                             v<VERSION>/.node naming the node binary); without it OpenClaw is skipped
  --openclaw-version V       default 2026.1.30
  --openclaw-sizes "100 1000"  sizes measured against OpenClaw (its store rewrites grow with N)
  --openclaw-storm-sizes "1000"  of those, the sizes that get a reconnect storm ("" for none)
  --parallel K               handshakes in flight on the client loop (default 32)
  --seconds S                duration of each handshake run (default 10)
  --idle-seconds S           idle CPU window with everybody held (default 10)
  --samples M                approvals timed per size (default 1000)
  --skip-build               use bench/build-release as it is
  --quick                    sizes "100 1000", 3 s runs, 3 s idle windows
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/.." && pwd)"
bdir="${BENCH_BUILD_DIR:-$here/build-release}"
sizes="100 1000 10000"
oc_lab=""
oc_version="2026.1.30"
oc_sizes="100 1000"
oc_storm_sizes="1000"
storm_seconds=300
parallel=32
seconds=10
idle=10
samples=1000
skip_build=0
while [[ $# -gt 0 ]]; do
	case "$1" in
	--sizes) sizes="$2"; shift ;;
	--openclaw-lab) oc_lab="$2"; shift ;;
	--openclaw-version) oc_version="$2"; shift ;;
	--openclaw-sizes) oc_sizes="$2"; shift ;;
	--openclaw-storm-sizes) oc_storm_sizes="$2"; shift ;;
	--parallel) parallel="$2"; shift ;;
	--seconds) seconds="$2"; shift ;;
	--idle-seconds) idle="$2"; shift ;;
	--samples) samples="$2"; shift ;;
	--skip-build) skip_build=1 ;;
	--quick) sizes="100 1000"; oc_sizes="100 1000"; oc_storm_sizes="100"; seconds=3; idle=3 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 64 ;;
	esac
	shift
done

log() { echo "bench: $*" >&2; }

# --- build ---------------------------------------------------------------------------------
if [[ $skip_build -eq 0 ]]; then
	# A build dir configured for another source tree is of no use here.
	if [[ -f "$bdir/meson-info/meson-info.json" ]] &&
		! grep -qF "\"source\": \"$src\"" "$bdir/meson-info/meson-info.json"; then
		rm -rf "$bdir"
	fi
	if [[ ! -f "$bdir/build.ninja" ]]; then
		meson setup "$bdir" "$src" -Dbuildtype=release -Dtests=false >/dev/null
	fi
	ninja -C "$bdir" -j2 >/dev/null
fi
gateway="$bdir/server/clawpair-gateway"
bench="$bdir/bench/clawpair-bench"
conformance="$bdir/conformance/clawpair-conformance"
for exe in "$gateway" "$bench"; do
	[[ -x "$exe" ]] || { log "missing $exe (is bench/ wired into meson.build?)"; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/clawpair-bench.XXXXXX")"
results="$work/results.jsonl"
: >"$results"
gw_pid=""
oc_pid=""
cleanup() {
	if [[ -n "$gw_pid" ]]; then stop_ref; fi
	if [[ -n "$oc_pid" ]]; then stop_openclaw; fi
	rm -rf "$work"
}
trap cleanup EXIT
token="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

record() { # kind target n json
	python3 - "$1" "$2" "$3" "$4" >>"$results" <<'PY'
import json, sys
kind, target, n, raw = sys.argv[1:5]
try:
    d = json.loads(raw)
except ValueError:
    d = {"error": raw[:200]}
d.update(kind=kind, target=target, n=int(n))
print(json.dumps(d))
PY
}

# --- the reference gateway -----------------------------------------------------------------
gw_url=""
# Every load comes from 127.0.0.1, so the per-address caps are raised for the run (a real storm
# comes from as many addresses as nodes).
start_ref() { # state dir [port]
	local d="$1" port="${2:-0}" i
	mkdir -p "$d"
	: >"$d/stdout"
	"$gateway" --listen "127.0.0.1:$port" --state-dir "$d/state" --token "$token" \
		--no-local-auto-approve --max-pending 20000 --max-pending-per-ip 20000 \
		--max-upgrading 20000 --max-upgrading-per-ip 20000 \
		--pending-ttl 3600 --log-level warn >"$d/stdout" 2>>"$d/stderr" &
	gw_pid=$!
	for ((i = 0; i < 200; i++)); do
		gw_url="$(sed -n 's/.*listening on \(ws:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$d/stdout" | head -1)"
		[[ -n "$gw_url" ]] && return 0
		kill -0 "$gw_pid" 2>/dev/null || break
		sleep 0.05
	done
	log "reference gateway did not start: $(tail -3 "$d/stderr")"
	return 1
}
stop_ref() {
	[[ -n "$gw_pid" ]] || return 0
	kill -TERM "$gw_pid" 2>/dev/null || true
	wait "$gw_pid" 2>/dev/null || true
	gw_pid=""
}

# --- OpenClaw (optional) -------------------------------------------------------------------
oc_port=""
oc_dir=""
oc_node=""
openclaw_available() {
	[[ -n "$oc_lab" ]] || { log "OpenClaw skipped: no --openclaw-lab given"; return 1; }
	oc_dir="$oc_lab/v$oc_version"
	if [[ ! -f "$oc_dir/node_modules/openclaw/openclaw.mjs" || ! -f "$oc_dir/.node" ]]; then
		log "OpenClaw skipped: openclaw@$oc_version is not installed in $oc_lab"
		return 1
	fi
	oc_node="$(cat "$oc_dir/.node")"
	[[ -x "$oc_node" ]] || { log "OpenClaw skipped: node binary $oc_node missing"; return 1; }
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
start_openclaw() { # state dir [port]
	local d="$1" i
	oc_port="${2:-$(free_port)}"
	mkdir -p "$d/home" "$d/state" "$d/tmp"
	# Token auth on loopback, nothing optional started; the config schema is closed, so only
	# keys 2026.1.30 knows.
	cat >"$d/state/openclaw.json" <<EOF
{"gateway": {"mode": "local", "port": $oc_port, "bind": "loopback",
             "auth": {"mode": "token", "token": "$token"}},
 "update": {"checkOnStart": false},
 "logging": {"file": "$d/openclaw.log"}}
EOF
	(
		cd "$d"
		exec env HOME="$d/home" TMPDIR="$d/tmp" OPENCLAW_STATE_DIR="$d/state" \
			OPENCLAW_CONFIG_PATH="$d/state/openclaw.json" OPENCLAW_NO_RESPAWN=1 \
			OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_SKIP_CHANNELS=1 \
			OPENCLAW_SKIP_PROVIDERS=1 OPENCLAW_SKIP_GMAIL_WATCHER=1 \
			OPENCLAW_SKIP_BROWSER_CONTROL_SERVER=1 OPENCLAW_SKIP_CANVAS_HOST=1 \
			OPENCLAW_SKIP_CRON=1 OPENCLAW_SKIP_STARTUP_MODEL_PREWARM=1 \
			PATH="$(dirname "$oc_node"):$PATH" \
			setsid "$oc_node" "$oc_dir/node_modules/openclaw/openclaw.mjs" gateway run \
			--port "$oc_port" --bind loopback --token "$token" </dev/null >"$d/gateway.log" 2>&1
	) &
	oc_pid=$!
	# Ready once it logs that it listens (the port alone opens a little earlier).
	for ((i = 0; i < 600; i++)); do
		kill -0 "$oc_pid" 2>/dev/null || { log "OpenClaw exited: $(tail -3 "$d/gateway.log")"; oc_pid=""; return 1; }
		if [[ -f "$d/gateway.log" ]] && sed 's/\x1b\[[0-9;]*m//g' "$d/gateway.log" | grep -qE '\[gateway\] (ready$|listening on ws://)'; then
			return 0
		fi
		sleep 0.25
	done
	log "OpenClaw did not become ready in 150 s"
	stop_openclaw
	return 1
}
stop_openclaw() {
	[[ -n "$oc_pid" ]] || return 0
	kill -TERM "$oc_pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 40; i++)); do kill -0 "$oc_pid" 2>/dev/null || break; sleep 0.25; done
	kill -KILL "$oc_pid" 2>/dev/null || true
	# setsid made it a process group leader; its workers go with it
	kill -TERM -- "-$oc_pid" 2>/dev/null || true
	wait "$oc_pid" 2>/dev/null || true
	oc_pid=""
}

# The reconnect storm: clawpair-bench connects n paired devices, says so through a file, and
# keeps them reconnecting while restart_fn stops the gateway and starts it again on its port.
storm() { # target n seed url sig restart_fn
	local target="$1" n="$2" sd="$3" url="$4" sig="$5" restart_fn="$6" ready out bpid i
	ready="$work/storm-ready-$target-$n"
	out="$work/storm-$target-$n.json"
	rm -f "$ready"
	"$bench" storm --url "$url" --token "$token" --count "$n" --seed-base "$sd" --sig "$sig" \
		--parallel "$parallel" --ready-file "$ready" --seconds "$storm_seconds" >"$out" &
	bpid=$!
	for ((i = 0; i < storm_seconds * 10; i++)); do
		[[ -f "$ready" ]] && break
		kill -0 "$bpid" 2>/dev/null || break
		sleep 0.1
	done
	local t_stop=0 t_up=0
	if [[ -f "$ready" ]]; then
		t_stop="$(date +%s%3N)"
		"$restart_fn"
		t_up="$(date +%s%3N)"
	else
		log "storm: the $n nodes did not all connect"
	fi
	wait "$bpid" || true
	# The restart's own times: stop (every socket closed) and start (listening again).
	record storm "$target" "$n" "$(python3 - "$out" "$t_stop" "$t_up" "$restart_stopped" <<'PY'
import json, sys
path, t_stop, t_up, t_stopped = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
try:
    d = json.load(open(path))
except (OSError, ValueError):
    d = {"error": "storm failed"}
if t_stop and t_up:
    d["restart_stop_s"] = (t_stopped - t_stop) / 1000.0
    d["restart_start_s"] = (t_up - t_stopped) / 1000.0
    if d.get("all_back_wall_ms", -1) > 0:
        d["from_listening_s"] = (d["all_back_wall_ms"] - t_up) / 1000.0
print(json.dumps(d))
PY
)"
}
restart_stopped=0
restart_ref() {
	local port="${gw_url##*:}" d="$ref_dir"
	stop_ref
	restart_stopped="$(date +%s%3N)"
	start_ref "$d" "$port" || log "reference gateway did not restart"
}
restart_openclaw() {
	local port="$oc_port" d="$oc_state"
	stop_openclaw
	restart_stopped="$(date +%s%3N)"
	start_openclaw "$d" "$port" || log "OpenClaw did not restart"
}

# --- measurements --------------------------------------------------------------------------
log "Ed25519 verify ceiling"
record verify ceiling 1 "$("$bench" verify --seconds 3)"

seed=4096
for n in $sizes; do
	log "reference: pairing $n devices through device.pair.approve"
	start_ref "$work/ref-hs-$n"
	seed=$((seed + 100000))
	out="$("$bench" pair --url "$gw_url" --token "$token" --count "$n" --approve \
		--seed-base "$seed" --seconds 600 || true)"
	record pair ref "$n" "$out"
	log "reference: handshake throughput, $n paired devices, $parallel in flight, ${seconds}s"
	record handshake ref "$n" "$("$bench" handshake --url "$gw_url" --token "$token" \
		--count "$n" --seed-base "$seed" --parallel "$parallel" --seconds "$seconds" \
		--pid "$gw_pid" || true)"
	log "reference: reconnect storm, $n paired nodes connected, gateway restarted"
	ref_dir="$work/ref-hs-$n"
	storm ref "$n" "$seed" "$gw_url" 3 restart_ref
	stop_ref

	log "reference: $n nodes held pending (idle ${idle}s, $samples approvals timed)"
	start_ref "$work/ref-hold-$n"
	seed=$((seed + 100000))
	record hold ref "$n" "$("$bench" hold --url "$gw_url" --token "$token" --count "$n" \
		--pid "$gw_pid" --seed-base "$seed" --idle-seconds "$idle" --samples "$samples" \
		--seconds 600 || true)"
	stop_ref
done

if openclaw_available; then
	for n in $oc_sizes; do
		log "OpenClaw $oc_version: pairing $n devices (loopback: silently auto-approved)"
		if ! start_openclaw "$work/oc-$n"; then
			record handshake openclaw "$n" '{"error":"OpenClaw did not start"}'
			continue
		fi
		seed=$((seed + 100000))
		out="$("$bench" pair --url "ws://127.0.0.1:$oc_port" --token "$token" --count "$n" \
			--sig 2 --parallel 8 --seed-base "$seed" --seconds 900 || true)"
		record pair openclaw "$n" "$out"
		log "OpenClaw $oc_version: handshake throughput, $n paired devices"
		record handshake openclaw "$n" "$("$bench" handshake --url "ws://127.0.0.1:$oc_port" \
			--token "$token" --count "$n" --sig 2 --seed-base "$seed" --parallel "$parallel" \
			--seconds "$seconds" --pid "$oc_pid" || true)"
		if [[ " $oc_storm_sizes " == *" $n "* ]]; then
			log "OpenClaw $oc_version: reconnect storm, $n paired nodes, gateway restarted"
			oc_state="$work/oc-$n"
			storm openclaw "$n" "$seed" "ws://127.0.0.1:$oc_port" 2 restart_openclaw
		fi
		stop_openclaw
	done
fi

if [[ -x "$conformance" ]]; then
	log "conformance suite against the reference gateway"
	record suite ref 0 "$(python3 "$here/suite.py" "$gateway" "$conformance" || echo '{"error":"suite.py failed"}')"
else
	log "conformance suite skipped: $conformance not built"
fi

# --- report --------------------------------------------------------------------------------
mkdir -p "$here/results"
python3 "$here/report.py" "$results" "$here/results/latest.json" \
	--meta "parallel=$parallel" "seconds=$seconds" "idle_seconds=$idle" "samples=$samples" \
	"openclaw_version=$oc_version" "cpus=$(nproc)" "kernel=$(uname -r)" \
	"cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
