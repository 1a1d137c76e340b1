#!/bin/sh
# Tests the Windows build under Wine (make windows-test; see
# docs/windows.md):
#
#   1. the tests (those matching $WINDOWS_TESTS, default all) of every
#      package, cross-compiled with MinGW-w64 and run by `go test -exec
#      wine64 -json` (cmd/llamago's run bin/llamago.exe, LLAMAGO_TEST_BIN,
#      as the Wine prefix has no go command to build it);
#      scripts/winetest sorts the failures, and fails on any but the known
#      ones listed below;
#   2. bin/llamago.exe version, then bin/llamago.exe run with greedy
#      sampling on the test models, whose text must equal bin/llamago's
#      (the Linux build) byte for byte.
#
# Environment: WINE (default wine64), WINDOWS_TESTS (a go test -run
# pattern), MODELS (default ../shared/models), WINDOWS_MARCH (as the
# Makefile), WINEDEBUG (default -all: no Wine diagnostics), WINEPREFIX
# (default ~/.cache/llamago/wine, created on the first run).
#
# Go's runtime (1.22 and later) needs ProcessPrng from bcryptprimitives.dll,
# which older Wine (Debian 12's 8.0) lacks: the program dies with "fatal
# error: bcryptprimitives.dll not found". If the prefix has no such DLL,
# the script builds a stand-in with MinGW (ProcessPrng on top of
# advapi32's RtlGenRandom) and puts it in the prefix's system32. It serves
# the tests only; Windows 10 and later have the real one.
set -eu

wine=${WINE:-wine64}
tests=${WINDOWS_TESTS:-}
models=$(cd "${MODELS:-../shared/models}" && pwd)
export WINEDEBUG=${WINEDEBUG:--all}
export WINEPREFIX=${WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/llamago/wine}

if [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
	echo "== creating the Wine prefix $WINEPREFIX"
	mkdir -p "$WINEPREFIX"
	"$wine" cmd /c exit >/dev/null 2>&1 || true
fi
dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$dll" ]; then
	echo "== $("$wine" --version) has no bcryptprimitives.dll: installing a stand-in (ProcessPrng) as $dll"
	tmp=$(mktemp -d)
	cat >"$tmp/bcryptprimitives.c" <<'EOF'
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T n) {
	while (n > 0) {
		ULONG k = n > 0x10000000 ? 0x10000000 : (ULONG) n;
		if (!RtlGenRandom(data, k)) {
			return FALSE;
		}
		data += k;
		n -= k;
	}
	return TRUE;
}
EOF
	printf 'LIBRARY bcryptprimitives\nEXPORTS\n\tProcessPrng\n' >"$tmp/bcryptprimitives.def"
	x86_64-w64-mingw32-gcc-posix -O2 -shared -o "$dll" "$tmp/bcryptprimitives.c" "$tmp/bcryptprimitives.def" -ladvapi32
	rm -rf "$tmp"
fi

# Windows paths of Unix ones: Wine maps / to drive Z:.
winpath() {
	printf 'Z:%s\n' "$1" | tr / '\\'
}

# Known failures with MinGW-w64 GCC under Wine (docs/windows.md): a
# 5-token prompt takes less than a tick of the monotonic clock Go reads on
# Windows (TestComplete wants a non-zero prompt time); libstdc++'s
# std::wregex, with Windows's 16-bit wchar_t, rejects the deepseek-llm
# pre-tokenizer's ranges of characters beyond U+FFFF, so that vocabulary
# does not load (llama.cpp issue 7118); and two backend loading tests run
# the go command, which the Wine prefix does not have. Besides, every test
# that uses t.TempDir fails in its cleanup under Wine 8.0, which
# scripts/winetest reports apart.
known='llama\.(TestComplete|TestTokenizerConformance/deepseek-llm|TestTokenizerHostileInput|FuzzTokenize|TestBackendLoadFallback|TestBackendLoadFake)'
pkgs='./llama/ ./server/ ./chat/ ./models/ ./gguf/ ./bench/ ./internal/clock/ ./cmd/llamago/'

echo "== go test -exec $wine -json -run '${tests:-.}' $pkgs"
(
	eval "$(TARGET=windows MARCH=${WINDOWS_MARCH:-x86-64-v3} sh scripts/cgo-env.sh)"
	LLAMAGO_TEST_MODELS=$(winpath "$models") LLAMAGO_TEST_BIN=$(winpath "$PWD/bin/llamago.exe") go test -exec "$wine" -count=1 -timeout 30m -json -run "${tests:-.}" $pkgs 2>&1
) | go run ./scripts/winetest -known "$known"

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
