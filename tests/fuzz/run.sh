#!/usr/bin/env bash
# run.sh: builds the libFuzzer targets (clang, ASan + UBSan) and runs each one for a while.
#
# Usage: tests/fuzz/run.sh [SECONDS_PER_TARGET]      (default 20)
# Env:   FUZZ_BUILD_DIR (default <source>/build-fuzz), FUZZ_JOBS (ninja -j, default 2),
#        FUZZ_ARTIFACTS (where crashing inputs are kept, default <build>/fuzz-artifacts)
# Exit status: 0 when every built target ran clean; 1 on any crash, leak, timeout or OOM;
# 2 when the build failed.
set -euo pipefail

secs="${1:-20}"
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds-per-target]" >&2; exit 64; }
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bdir="${FUZZ_BUILD_DIR:-$src/build-fuzz}"
artifacts="${FUZZ_ARTIFACTS:-$bdir/fuzz-artifacts}"
targets=(fuzz_frame fuzz_store fuzz_scenario)

# A build dir configured for another source tree is of no use here.
if [[ -f "$bdir/meson-info/meson-info.json" ]] &&
	! grep -qF "\"source\": \"$src\"" "$bdir/meson-info/meson-info.json"; then
	rm -rf "$bdir"
fi
if [[ ! -f "$bdir/build.ninja" ]]; then
	# The libraries need coverage instrumentation as well (fuzzer-no-link), so the whole
	# tree is built with clang. tests/ is only needed when tests/fuzz is reached through it.
	with_tests=true
	if grep -q "subdir('tests/fuzz')" "$src/meson.build"; then with_tests=false; fi
	CC=clang meson setup "$bdir" "$src" -Dfuzz=true -Dtests="$with_tests" \
		-Dbuildtype=debugoptimized -Dwerror=false -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link >/dev/null ||
		{ echo "fuzz: meson setup failed" >&2; exit 2; }
fi
ninja -C "$bdir" -j"${FUZZ_JOBS:-2}" >/dev/null || { ninja -C "$bdir" -j1 | tail -30; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/clawpair-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

status=0
printf '%-14s %10s %10s %8s %8s %s\n' target execs exec/s cov ft result
for t in "${targets[@]}"; do
	exe="$(find "$bdir" -type f -name "$t" -perm -u+x | head -1)"
	if [[ -z "$exe" ]]; then
		if [[ "$t" == fuzz_frame ]]; then
			echo "fuzz: $t was not built (is tests/fuzz wired into meson.build?)" >&2
			status=1
		fi
		printf '%-14s %10s %10s %8s %8s %s\n' "$t" - - - - "not built, skipped"
		continue
	fi
	corpus="$work/corpus-$t"
	mkdir -p "$corpus"
	# Seeds, plus every input that once broke a target (kept as regressions).
	for seeds in "$src/tests/fuzz/corpus/$t" "$src/tests/fuzz/regressions/$t"; do
		if [[ -d "$seeds" ]]; then cp -R "$seeds/." "$corpus/"; fi
	done
	log="$work/$t.log"
	rc=0
	(cd "$work" && "$exe" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$artifacts/$t-" "$corpus") >"$log" 2>&1 || rc=$?
	execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
	rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
	cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)"
	ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)"
	result=ok
	if [[ $rc -ne 0 ]] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
		result="FAILED (rc $rc, artifacts in $artifacts)"
		status=1
		cp "$log" "$artifacts/$t.log"
		grep -E 'ERROR|runtime error|SUMMARY|check failed' "$log" | head -5 >&2 || true
	fi
	printf '%-14s %10s %10s %8s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
