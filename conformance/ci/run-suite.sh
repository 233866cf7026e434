#!/bin/sh
# run-suite.sh: the conformance suite as a CI step: gateway and token in, JUnit, HTML and JSON
# reports out, the runner's exit status (conformance/README.md, "In CI").
set -u

usage() {
	cat <<'USAGE'
Usage: run-suite.sh [--url URL] [--token-file FILE] [--out DIR] [--expectations FILE]
                    [--runner BIN] [-- RUNNER-OPTIONS...]
Runs clawpair-conformance against a gateway and writes DIR/junit.xml, DIR/report.html,
DIR/report.json and DIR/console.txt.

  --url URL            the gateway, ws:// or wss:// (else $CLAWPAIR_URL)
  --token-file FILE    the shared token's file (else $CLAWPAIR_TOKEN holds the token);
                       never on the command line
  --out DIR            where the reports go (else $CLAWPAIR_REPORT_DIR, else
                       ./conformance-report)
  --expectations FILE  known failures (else $CLAWPAIR_EXPECTATIONS, if set)
  --runner BIN         clawpair-conformance to run (else $CLAWPAIR_CONFORMANCE, else the one
                       on PATH, else the installed one or the build tree's, found from
                       this script's place)
  -- OPTIONS           passed to clawpair-conformance (--pending-ttl-ms 2000, --jobs 4, ...)

Exit status: clawpair-conformance's: 0 passed, 1 a failed check or a refused token, 2 bad
usage or an unusable gateway (and 2 for a bad option of this script).
With $GITHUB_STEP_SUMMARY set (GitHub Actions), the summary is added to the job's page.
USAGE
}

die() {
	echo "run-suite.sh: $*" >&2
	exit 2
}

url=${CLAWPAIR_URL:-}
token_file=
out=${CLAWPAIR_REPORT_DIR:-conformance-report}
expectations=${CLAWPAIR_EXPECTATIONS:-}
runner=${CLAWPAIR_CONFORMANCE:-}

while [ $# -gt 0 ]; do
	case $1 in
	--url) [ $# -ge 2 ] || die "--url needs a value"; url=$2; shift 2 ;;
	--token-file) [ $# -ge 2 ] || die "--token-file needs a value"; token_file=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
	--expectations) [ $# -ge 2 ] || die "--expectations needs a value"; expectations=$2; shift 2 ;;
	--runner) [ $# -ge 2 ] || die "--runner needs a value"; runner=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) usage >&2; die "unknown option $1" ;;
	esac
done

[ -n "$url" ] || die "no gateway: pass --url or set CLAWPAIR_URL"
if [ -n "$token_file" ]; then
	[ -r "$token_file" ] || die "cannot read the token file $token_file"
elif [ -z "${CLAWPAIR_TOKEN:-}" ]; then
	die "no token: pass --token-file or set CLAWPAIR_TOKEN (from the CI's secret store)"
fi
if [ -z "$runner" ]; then
	here=$(cd "$(dirname "$0")" && pwd)
	if command -v clawpair-conformance >/dev/null 2>&1; then
		runner=clawpair-conformance
	elif [ -x "$here/../../../../bin/clawpair-conformance" ]; then
		# installed: <prefix>/share/clawpair/conformance/ci/
		runner=$here/../../../../bin/clawpair-conformance
	elif [ -x "$here/../../build/conformance/clawpair-conformance" ]; then
		runner=$here/../../build/conformance/clawpair-conformance
	else
		die "no clawpair-conformance: put it on PATH, or pass --runner"
	fi
fi
mkdir -p "$out" || die "cannot make $out"

set -- --url "$url" --junit "$out/junit.xml" --html "$out/report.html" \
	--json "$out/report.json" "$@"
[ -n "$token_file" ] && set -- --token-file "$token_file" "$@"
[ -n "$expectations" ] && set -- --expectations "$expectations" "$@"

# the console goes to the job log and to a file; the status is the runner's, not tee's
status_file=$out/.status
{ "$runner" "$@" 2>&1; echo $? >"$status_file"; } | tee "$out/console.txt"
status=$(cat "$status_file" 2>/dev/null || echo 2)
rm -f "$status_file"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
	{
		echo '### clawpair conformance'
		echo
		grep -E '^(Summary|Verdict):' "$out/console.txt" | sed 's/^/    /'
		echo
		echo "Reports: \`$out/report.html\`, \`$out/junit.xml\`, \`$out/report.json\`"
	} >>"$GITHUB_STEP_SUMMARY"
fi
echo "run-suite.sh: exit $status; reports in $out/ (junit.xml, report.html, report.json, console.txt)"
exit "$status"
