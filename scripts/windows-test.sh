#!/bin/sh
# Tests the Windows build under Wine (make windows-test; see
# docs/windows.md):
#
#   1. the llama package's tests matching $WINDOWS_TESTS, cross-compiled
#      with MinGW-w64 and run by `go test -exec wine64`;
#   2. bin/llamago.exe version, then bin/llamago.exe run with greedy
#      sampling on the test models, whose text must equal bin/llamago's
#      (the Linux build) byte for byte.
#
# Environment: WINE (default wine64), WINDOWS_TESTS (a go test -run
# pattern), MODELS (default ../shared/models), WINDOWS_MARCH (as the
# Makefile), WINEDEBUG (default -all: no Wine diagnostics). The first run
# creates the Wine prefix (~/.wine), which takes a while.
set -eu

wine=${WINE:-wine64}
tests=${WINDOWS_TESTS:-TestGreedy|Tokenizer}
models=$(cd "${MODELS:-../shared/models}" && pwd)
export WINEDEBUG=${WINEDEBUG:--all}

# Windows paths of Unix ones: Wine maps / to drive Z:.
winpath() {
	printf 'Z:%s\n' "$1" | tr / '\\'
}

log=$(mktemp)
echo "== go test -exec $wine -run '$tests' ./llama/"
(
	eval "$(TARGET=windows MARCH=${WINDOWS_MARCH:-x86-64-v3} sh scripts/cgo-env.sh)"
	LLAMAGO_TEST_MODELS=$(winpath "$models") go test -exec "$wine" -count=1 -timeout 30m -v -run "$tests" ./llama/
) >"$log" 2>&1 || {
	tail -40 "$log"
	echo "windows-test: the llama tests failed under Wine; full log in $log" >&2
	exit 1
}
grep -E '^(--- |ok|FAIL|PASS)' "$log" || true
rm -f "$log"

echo "== $wine bin/llamago.exe version"
"$wine" bin/llamago.exe version | tr -d '\r'

prompt="Once upon a time"
status=0
for m in stories260K.gguf llama-2-tiny-random.gguf; do
	[ -f "$models/$m" ] || continue
	echo "== llamago run -m $m --temp 0 -n 30 \"$prompt\": Linux against Wine"
	linux=$(bin/llamago run -m "$models/$m" --temp 0 -n 30 "$prompt")
	windows=$("$wine" bin/llamago.exe run -m "$(winpath "$models/$m")" --temp 0 -n 30 "$prompt" | tr -d '\r')
	if [ "$linux" = "$windows" ]; then
		echo "same text: $(printf '%s' "$windows" | head -c 200)"
	else
		echo "DIFFERENT"
		echo "  linux:   $linux"
		echo "  windows: $windows"
		status=1
	fi
done
exit $status
