#!/bin/sh
# Prints the cgo environment that builds github.com/llamago/llamago/llama:
#
#   - include paths of llama.cpp inside the pinned github.com/ollama/ollama
#     module (llama.h, ggml.h, and the ggml sources the AMX kernels need);
#   - CPU weight repacking (-DGGML_USE_CPU_REPACK), which the module's own
#     cgo packages leave out;
#   - -DNDEBUG, which the module sets for ggml but not for libllama: as in
#     upstream's release builds, llama.cpp's debug assert()s are compiled
#     out (GGML_ASSERT stays);
#   - -O3 -march=native (PORTABLE=1 drops -march=native; MARCH=x86-64-v3,
#     for example, builds for a microarchitecture level instead);
#   - no OpenMP: ggml's CPU threads come from a threadpool that each
#     llama.Context owns (llama/threadpool.go), so that they do not depend
#     on which OS thread a goroutine calls Decode from. LLAMAGO_OPENMP=1
#     builds with OpenMP instead, as upstream's CMake does, when the C
#     compiler supports -fopenmp (docs/benchmarks.md measures both).
#
# TARGET=windows prints the environment of a cross-compilation for
# Windows x86-64 with Debian's MinGW-w64 (packages gcc-mingw-w64-x86-64-posix
# and g++-mingw-w64-x86-64-posix): GOOS, GOARCH, CC and CXX too, -march=x86-64-v3
# (AVX2; MARCH=... picks another level, PORTABLE=1 none) instead of native,
# and everything linked statically, so that llamago.exe needs no MinGW DLLs.
# See docs/windows.md.
#
# Use it from any module that imports the package:
#
#	eval "$(sh "$(go list -m -f '{{.Dir}}' github.com/llamago/llamago)/scripts/cgo-env.sh")"
#	go build ./...
set -eu
dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
if [ -z "$dir" ]; then
	go mod download github.com/ollama/ollama >/dev/null
	dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
fi
ggml="$dir/ml/backend/ggml/ggml"
cppflags="-I$dir/llama/llama.cpp/include -I$dir/llama/llama.cpp -I$ggml/include -I$ggml/src -I$ggml/src/ggml-cpu -DGGML_USE_CPU_REPACK -DNDEBUG"
opt="-O3"
ldflags=""
if [ "${TARGET:-}" = windows ]; then
	cc=${CC_WINDOWS:-x86_64-w64-mingw32-gcc-posix}
	cxx=${CXX_WINDOWS:-x86_64-w64-mingw32-g++-posix}
	for tool in "$cc" "$cxx"; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "cgo-env.sh: $tool not found; on Debian: apt-get install gcc-mingw-w64-x86-64-posix g++-mingw-w64-x86-64-posix" >&2
			exit 1
		fi
	done
	if [ "${PORTABLE:-0}" != 1 ]; then
		opt="$opt -march=${MARCH:-x86-64-v3}"
	fi
	ldflags="-static"
	if [ "${LLAMAGO_OPENMP:-0}" = 1 ]; then
		probe=$(mktemp -d)
		printf '#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n' >"$probe/omp.c"
		if $cc -fopenmp -static "$probe/omp.c" -o "$probe/omp.exe" >/dev/null 2>&1; then
			cppflags="$cppflags -DGGML_USE_OPENMP"
			opt="$opt -fopenmp"
			ldflags="-fopenmp -static"
		fi
		rm -rf "$probe"
	fi
	# nlohmann/json (header-only, for llama.cpp's common library; see the
	# Makefile's deps) is not in MinGW's include path, and the host's
	# /usr/include must not be: a directory that holds only a link to the
	# host's nlohmann/ goes on the include path instead.
	for inc in ${NLOHMANN_INCLUDE:-} /usr/include /usr/local/include; do
		if [ -f "$inc/nlohmann/json.hpp" ]; then
			shim="${XDG_CACHE_HOME:-$HOME/.cache}/llamago/mingw-include"
			mkdir -p "$shim"
			ln -sfn "$inc/nlohmann" "$shim/nlohmann"
			cppflags="$cppflags -I$shim"
			break
		fi
	done
	echo "export GOOS=windows"
	echo "export GOARCH=amd64"
	echo "export CC=\"$cc\""
	echo "export CXX=\"$cxx\""
else
	if [ "${PORTABLE:-0}" != 1 ]; then
		opt="$opt -march=${MARCH:-native}"
	fi
	if [ "${LLAMAGO_OPENMP:-0}" = 1 ]; then
		cc=$(go env CC)
		probe=$(mktemp -d)
		printf '#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n' >"$probe/omp.c"
		if $cc -fopenmp "$probe/omp.c" -o "$probe/omp" >/dev/null 2>&1; then
			cppflags="$cppflags -DGGML_USE_OPENMP"
			opt="$opt -fopenmp"
			ldflags="-fopenmp"
		fi
		rm -rf "$probe"
	fi
fi
echo "export CGO_ENABLED=1"
echo "export CGO_CPPFLAGS=\"$cppflags\""
echo "export CGO_CFLAGS=\"$opt\""
echo "export CGO_CXXFLAGS=\"$opt\""
echo "export CGO_LDFLAGS=\"$ldflags\""
