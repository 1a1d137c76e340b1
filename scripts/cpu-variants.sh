#!/bin/sh
# Builds ggml's CPU backend from the pinned github.com/ollama/ollama module
# as loadable libraries, one per x86-64 microarchitecture, the way
# llama.cpp's GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON build does:
#
#	libggml-cpu-haswell.so, libggml-cpu-skylakex.so, ...
#
# A llamago built with PORTABLE=1 (baseline x86-64 code) finds them next to
# its executable, or in ../lib/llamago, or in the directories of
# $LLAMAGO_CPU_VARIANTS; it asks each library for ggml_backend_score (0: the
# CPU lacks a needed feature, otherwise higher for more features), loads the
# best one and unregisters its own compiled-in CPU backend, which stays the
# fallback when no library fits. See docs/portable.md.
#
# Usage: sh scripts/cpu-variants.sh [-o DIR] [-j JOBS] [VARIANT...]
#
#   -o DIR   where the libraries go (default bin)
#   -j JOBS  compilers run in parallel (default 2)
#   VARIANT  sse42 sandybridge haswell skylakex icelake alderlake zen4
#            sapphirerapids, or "all" (the default: all of these), or x64
#            (baseline x86-64, which a PORTABLE=1 llamago has built in)
#
# The libraries hold only ggml-cpu: they call ggml's base functions (ggml.c,
# ggml-backend.cpp, ...) in the llamago executable, which exports them
# (-Wl,--export-dynamic); every other symbol is local to the library, so
# the library's code never binds to the executable's baseline copy. A
# library therefore works with a llamago built from the same module version
# only, which the llama package checks: each library is stamped with the
# module version (llamago_ggml_source, scripts/cuda/stamp.c). Linux on
# x86-64 only: see docs/portable.md for arm64 and Windows.
#
# Environment: CC and CXX (default: go env CC / CXX), LLAMAGO_OPENMP=1 to
# build with OpenMP (as scripts/cgo-env.sh), CFLAGS_EXTRA.
set -eu

out=bin
jobs=2
while getopts o:j: opt; do
	case $opt in
	o) out=$OPTARG ;;
	j) jobs=$OPTARG ;;
	*) echo "usage: $0 [-o DIR] [-j JOBS] [VARIANT...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
variants=${*:-all}
if [ "$variants" = all ]; then
	variants="sse42 sandybridge haswell skylakex icelake alderlake zen4 sapphirerapids"
fi

case $(uname -s)/$(uname -m) in
Linux/x86_64 | Linux/amd64) ;;
*) echo "$0: CPU variants are built for Linux on x86-64 only, not $(uname -s)/$(uname -m)" >&2; exit 1 ;;
esac

dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
if [ -z "$dir" ]; then
	go mod download github.com/ollama/ollama >/dev/null
	dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
fi
src="$dir/ml/backend/ggml/ggml/src"
# The stamp the llama package checks before it loads a library (as for
# scripts/build-cuda.sh's): the ggml sources it was built from.
source=$(go list -m -f '{{.Path}}@{{.Version}}' github.com/ollama/ollama)
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-$(go env CC)}
cxx=${CXX:-$(go env CXX)}

# The features of each variant: ggml's CMake names (the GGML_<name>
# definitions ggml-cpu/arch/x86/cpu-feats.cpp scores) and gcc's flags, as in
# ggml/src/CMakeLists.txt (ggml_add_cpu_backend_variant) and newer
# upstream's zen4 and sapphirerapids.
feats() {
	case $1 in
	x64) echo "" ;;
	sse42) echo "SSE42" ;;
	sandybridge) echo "SSE42 AVX" ;;
	haswell) echo "SSE42 AVX F16C AVX2 BMI2 FMA" ;;
	skylakex) echo "SSE42 AVX F16C AVX2 BMI2 FMA AVX512" ;;
	icelake) echo "SSE42 AVX F16C AVX2 BMI2 FMA AVX512 AVX512_VBMI AVX512_VNNI" ;;
	alderlake) echo "SSE42 AVX F16C AVX2 BMI2 FMA AVX_VNNI" ;;
	zen4) echo "SSE42 AVX F16C AVX2 BMI2 FMA AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16" ;;
	sapphirerapids) echo "SSE42 AVX F16C AVX2 BMI2 FMA AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8" ;;
	*) return 1 ;;
	esac
}
flag() {
	case $1 in
	SSE42) echo "-msse4.2" ;;
	AVX) echo "-mavx" ;;
	F16C) echo "-mf16c" ;;
	AVX2) echo "-mavx2" ;;
	BMI2) echo "-mbmi2" ;;
	FMA) echo "-mfma" ;;
	AVX_VNNI) echo "-mavxvnni" ;;
	AVX512) echo "-mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw" ;;
	AVX512_VBMI) echo "-mavx512vbmi" ;;
	AVX512_VNNI) echo "-mavx512vnni" ;;
	AVX512_BF16) echo "-mavx512bf16" ;;
	AMX_TILE) echo "-mamx-tile" ;;
	AMX_INT8) echo "-mamx-int8" ;;
	esac
}

# The sources of CMake's ggml-cpu target on x86 (ggml/src/ggml-cpu/CMakeLists.txt).
sources="ggml-cpu/ggml-cpu.c ggml-cpu/ggml-cpu.cpp ggml-cpu/repack.cpp ggml-cpu/hbm.cpp
ggml-cpu/quants.c ggml-cpu/traits.cpp ggml-cpu/amx/amx.cpp ggml-cpu/amx/mmq.cpp
ggml-cpu/binary-ops.cpp ggml-cpu/unary-ops.cpp ggml-cpu/vec.cpp ggml-cpu/ops.cpp
ggml-cpu/llamafile/sgemm.cpp ggml-cpu/arch/x86/quants.c ggml-cpu/arch/x86/repack.cpp"

cppflags="-I$dir/ml/backend/ggml/ggml/include -I$src -I$src/ggml-cpu -I$src/ggml-cpu/amx -I$src/ggml-cpu/llamafile"
cppflags="$cppflags -DNDEBUG -D_GNU_SOURCE -DGGML_USE_LLAMAFILE -DGGML_USE_CPU_REPACK"
cppflags="$cppflags -DGGML_BACKEND_DL -DGGML_BACKEND_BUILD -DGGML_BACKEND_SHARED"
common="-O3 -fPIC -fvisibility=hidden ${CFLAGS_EXTRA:-}"
ldomp=""
if [ "${LLAMAGO_OPENMP:-0}" = 1 ]; then
	probe=$(mktemp -d)
	printf '#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n' >"$probe/omp.c"
	if $cc -fopenmp "$probe/omp.c" -o "$probe/omp" >/dev/null 2>&1; then
		cppflags="$cppflags -DGGML_USE_OPENMP"
		common="$common -fopenmp"
		ldomp="-fopenmp"
	fi
	rm -rf "$probe"
fi

mkdir -p "$out"
build="${TMPDIR:-/tmp}/llamago-cpu-variants"
mkdir -p "$build"
# Only ggml_backend_init, ggml_backend_score and the stamp leave the library.
cat >"$build/exports.map" <<'EOF'
{ global: ggml_backend_init; ggml_backend_score; llamago_ggml_source; local: *; };
EOF

for v in $variants; do
	if ! f=$(feats "$v"); then
		echo "$0: unknown variant $v" >&2
		exit 2
	fi
	archflags="" defs=""
	for x in $f; do
		archflags="$archflags $(flag "$x")"
		defs="$defs -DGGML_$x"
	done
	lib="$out/libggml-cpu-$v.so"
	stamp="$cc $cxx $cppflags $common $archflags $defs $source $(cksum <"$here/cuda/stamp.c")"
	if [ -f "$lib" ] && [ -f "$build/$v.stamp" ] && [ "$(cat "$build/$v.stamp")" = "$stamp" ]; then
		echo "$lib is up to date"
		continue
	fi
	obj="$build/$v"
	rm -rf "$obj"
	mkdir -p "$obj"
	echo "building $lib ($v:${f:- baseline})"
	start=$(date +%s)
	# One compiler per source file, $jobs at a time.
	for s in $sources; do
		o="$obj/$(echo "$s" | tr / _).o"
		case $s in
		*.c) echo "$cc -std=gnu11 $cppflags $common $archflags -c $src/$s -o $o" ;;
		*) echo "$cxx -std=c++17 $cppflags $common -fvisibility-inlines-hidden $archflags -c $src/$s -o $o" ;;
		esac
	done >"$obj/commands"
	# The score function is compiled without the architecture flags, so
	# that it runs on any CPU and rejects the ones the variant cannot.
	echo "$cxx -std=c++17 $cppflags $common $defs -c $src/ggml-cpu/arch/x86/cpu-feats.cpp -o $obj/cpu-feats.o" >>"$obj/commands"
	echo "$cc -O2 -fPIC -DLLAMAGO_GGML_SOURCE='\"$source\"' -c $here/cuda/stamp.c -o $obj/stamp.o" >>"$obj/commands"
	tr '\n' '\0' <"$obj/commands" | xargs -0 -P "$jobs" -n 1 sh -c 'echo "  $(basename "${0##* }")"; eval "$0"'
	$cxx -shared -o "$lib.tmp" "$obj"/*.o $ldomp -Wl,--version-script="$build/exports.map" \
		-Wl,-soname,"libggml-cpu-$v.so" -Wl,--as-needed
	mv "$lib.tmp" "$lib"
	echo "$stamp" >"$build/$v.stamp"
	rm -rf "$obj"
	echo "built $lib in $(($(date +%s) - start))s"
done
