#!/bin/sh
# Builds ggml's CUDA backend as a library that llamago loads at run time
# (ggml's GGML_BACKEND_DL mechanism), from the ggml sources of the same
# pinned github.com/ollama/ollama module that the llama package compiles
# in, with CMake and nvcc, through our own CMake entry point
# (scripts/cuda/CMakeLists.txt). Nothing of the module is copied.
#
# Usage: sh scripts/build-cuda.sh [-o DIR] [-j JOBS] [-B BUILD_DIR] [-R]
#
#   -o DIR        where the libraries go (default lib/llamago, which
#                 bin/llamago searches as ../lib/llamago)
#   -j JOBS       parallel compile jobs (default: the number of CPUs)
#   -B BUILD_DIR  CMake's build directory (default
#                 ${XDG_CACHE_HOME:-$HOME/.cache}/llamago/build-cuda)
#   -R            also copy the CUDA runtime libraries the backend needs
#                 (libcudart, libcublas, libcublasLt) into DIR, for machines
#                 with the NVIDIA driver but no CUDA Toolkit; without -R they
#                 must be found by the dynamic loader (ldconfig,
#                 LD_LIBRARY_PATH). The driver's libcuda.so.1 is never copied.
#
# Environment:
#   CUDA_ARCHS    CUDA architectures, as CMake's CMAKE_CUDA_ARCHITECTURES
#                 ("86", "80;89", "native"); default: those of the GPUs of
#                 this machine, from nvidia-smi
#   NVCC          the CUDA compiler (default: nvcc on PATH, or
#                 /usr/local/cuda/bin/nvcc)
#   CMAKE         cmake (default: cmake on PATH)
#   CMAKE_ARGS    more arguments for the configure step, e.g.
#                 "-DGGML_CUDA_FA_ALL_QUANTS=ON"
#   LLAMAGO_OLLAMA_DIR, LLAMAGO_OLLAMA_SOURCE
#                 a copy of the module's ggml sources (ml/backend/ggml/ggml
#                 and llama/build-info.cpp under it) and its path@version,
#                 where there is no go command to find the module
#
# Output: DIR/libggml-cuda.so, the backend, and DIR/libggml-base.so.0, the
# ggml base library it links with (found beside it through RUNPATH
# $ORIGIN). The backend is stamped with the module version
# (llamago_ggml_source); the llama package refuses a library with another
# stamp, or none: the backend shares ggml's data structures with the
# program, so it must come from the same sources. Rebuild it whenever
# go.mod's github.com/ollama/ollama changes. See docs/gpu.md.
set -eu

die() {
	echo "build-cuda.sh: $*" >&2
	exit 1
}

out=lib/llamago
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
build="${XDG_CACHE_HOME:-$HOME/.cache}/llamago/build-cuda"
runtime=0
usage="usage: $0 [-o DIR] [-j JOBS] [-B BUILD_DIR] [-R]"
while getopts o:j:B:R opt; do
	case $opt in
	o) out=$OPTARG ;;
	j) jobs=$OPTARG ;;
	B) build=$OPTARG ;;
	R) runtime=1 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "$usage" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)

# CMake, 3.18 or newer (CMAKE_CUDA_ARCHITECTURES).
cmake=${CMAKE:-cmake}
if ! command -v "$cmake" >/dev/null 2>&1; then
	die "CMake not found ($cmake): install CMake 3.18 or newer (Debian/Ubuntu: apt-get install cmake; or pip install cmake), or set CMAKE"
fi
cmake_version=$("$cmake" --version | sed -n 's/^cmake version \([0-9][0-9.]*\).*/\1/p')
case $cmake_version in
[0-2].* | 3.[0-9] | 3.[0-9].* | 3.1[0-7] | 3.1[0-7].*)
	die "CMake $cmake_version is too old: 3.18 or newer is needed" ;;
esac

# nvcc.
nvcc=${NVCC:-}
if [ -z "$nvcc" ]; then
	if command -v nvcc >/dev/null 2>&1; then
		nvcc=$(command -v nvcc)
	elif [ -x /usr/local/cuda/bin/nvcc ]; then
		nvcc=/usr/local/cuda/bin/nvcc
	fi
fi
if [ -z "$nvcc" ] || ! [ -x "$nvcc" ]; then
	die "nvcc not found${nvcc:+ ($nvcc)}: install the CUDA Toolkit (https://developer.nvidia.com/cuda-downloads; Debian/Ubuntu: apt-get install nvidia-cuda-toolkit) and put its bin directory on PATH, or set NVCC=/path/to/nvcc"
fi
"$nvcc" --version >/dev/null 2>&1 || die "$nvcc does not run ($nvcc --version failed)"

# The architectures: CUDA_ARCHS, or those of this machine's GPUs.
archs=${CUDA_ARCHS:-}
if [ -z "$archs" ]; then
	if command -v nvidia-smi >/dev/null 2>&1; then
		archs=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | grep -E '^[0-9]+$' | sort -u | paste -sd ';' - || true)
	fi
	if [ -z "$archs" ]; then
		die "no GPU found to build for (nvidia-smi lists none): set CUDA_ARCHS, e.g. CUDA_ARCHS=\"86\" for an RTX 30x0, \"89\" for an RTX 40x0 or L4, \"90\" for an H100, \"80;86;89;90\" for several"
	fi
fi

# The pinned module: its ggml sources and its version, the stamp. Where
# there is no go command (a GPU machine, scripts/gpu-proof.sh), the caller
# names both: LLAMAGO_OLLAMA_DIR, a copy of the module's files, and
# LLAMAGO_OLLAMA_SOURCE, its path@version.
if [ -n "${LLAMAGO_OLLAMA_DIR:-}" ]; then
	dir=$LLAMAGO_OLLAMA_DIR
	source=${LLAMAGO_OLLAMA_SOURCE:?LLAMAGO_OLLAMA_DIR needs LLAMAGO_OLLAMA_SOURCE, the module path@version}
else
	dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
	if [ -z "$dir" ]; then
		go mod download github.com/ollama/ollama >/dev/null
		dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
	fi
	source=$(go list -m -f '{{.Path}}@{{.Version}}' github.com/ollama/ollama)
fi
commit=$(sed -n 's/.*LLAMA_COMMIT = "\([^"]*\)".*/\1/p' "$dir/llama/build-info.cpp" 2>/dev/null || true)
ggml="$dir/ml/backend/ggml/ggml"
[ -f "$ggml/src/ggml-cuda/CMakeLists.txt" ] || die "$ggml/src/ggml-cuda/CMakeLists.txt not found: the module has no CUDA sources?"

echo "build-cuda.sh: ggml from $source, CUDA architectures $archs, nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
# shellcheck disable=SC2086 # CMAKE_ARGS is a list of arguments
"$cmake" -S "$here/cuda" -B "$build" \
	-DCMAKE_BUILD_TYPE=Release \
	-DGGML_DIR="$ggml" \
	-DLLAMAGO_GGML_SOURCE="$source" \
	-DLLAMAGO_LLAMA_COMMIT="${commit:-unknown}" \
	-DCMAKE_CUDA_COMPILER="$nvcc" \
	-DCUDAToolkit_ROOT="$(dirname "$(dirname "$nvcc")")" \
	-DCMAKE_CUDA_ARCHITECTURES="$archs" \
	${CMAKE_ARGS:-}
"$cmake" --build "$build" --target ggml-cuda -j "$jobs"

lib="$build/bin"
[ -f "$lib/libggml-cuda.so" ] || die "the build made no $lib/libggml-cuda.so"
# The backend asks for libggml-base.so.0 (the SONAME; DT_NEEDED).
[ -e "$lib/libggml-base.so.0" ] || die "the build made no $lib/libggml-base.so.0"
mkdir -p "$out"
cp -f "$lib/libggml-cuda.so" "$out/libggml-cuda.so"
cp -fL "$lib/libggml-base.so.0" "$out/libggml-base.so.0"

if [ "$runtime" = 1 ]; then
	# The CUDA Toolkit's shared libraries the backend links with, as the
	# dynamic loader resolves them here; found beside it through $ORIGIN.
	for name in libcudart libcublas libcublasLt; do
		path=$(ldd "$out/libggml-cuda.so" | awk -v n="$name.so" 'index($1, n) == 1 { print $3 }' | head -n 1)
		[ -n "$path" ] && [ -f "$path" ] || die "-R: ldd does not resolve $name for $out/libggml-cuda.so"
		cp -fL "$path" "$out/$(basename "$path")"
		echo "build-cuda.sh: copied $path"
	done
fi
echo "build-cuda.sh: wrote $out/libggml-cuda.so and $out/libggml-base.so.0"
echo "build-cuda.sh: bin/llamago loads them from ../lib/llamago; elsewhere set LLAMAGO_BACKEND_PATH=$(cd "$out" && pwd)"
echo "build-cuda.sh: check with: bin/llamago devices"
