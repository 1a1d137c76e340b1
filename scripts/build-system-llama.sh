#!/bin/sh
# Builds llama.cpp and ggml as shared libraries, with headers and
# pkg-config files (llama.pc, ggml.pc), from the sources of the pinned
# github.com/ollama/ollama module, and installs them into a prefix: an
# installed llama.cpp to build and test the llama package's llama_system
# mode against, through our own CMake project (scripts/system-llama).
#
# Usage: sh scripts/build-system-llama.sh [-j JOBS] [-B BUILD_DIR] PREFIX
#
#   PREFIX        where to install (PREFIX/lib, PREFIX/include,
#                 PREFIX/lib/pkgconfig)
#   -j JOBS       parallel compile jobs (default 2)
#   -B BUILD_DIR  CMake's build directory (default PREFIX/build)
#
# Environment: CMAKE (default cmake), CMAKE_ARGS (more configure
# arguments: -DGGML_CUDA=ON, -DGGML_NATIVE=OFF, ...).
#
# Then, as it prints:
#
#	export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig LD_LIBRARY_PATH=PREFIX/lib
#	eval "$(sh scripts/cgo-env-system.sh)"
#	go test -tags llama_system ./llama/
#
# (make test-system does all of it.) A real upstream install works the
# same way: PKG_CONFIG_PATH pointing at its llama.pc.
set -eu

die() {
	echo "build-system-llama.sh: $*" >&2
	exit 1
}

jobs=2
build=
while getopts j:B: opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	B) build=$OPTARG ;;
	*) echo "usage: $0 [-j JOBS] [-B BUILD_DIR] PREFIX" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: $0 [-j JOBS] [-B BUILD_DIR] PREFIX" >&2; exit 2; }
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
build=${build:-$prefix/build}
here=$(cd "$(dirname "$0")" && pwd)

cmake=${CMAKE:-cmake}
command -v "$cmake" >/dev/null 2>&1 ||
	die "CMake not found ($cmake): install CMake 3.18 or newer (Debian/Ubuntu: apt-get install cmake; or pip install cmake), or set CMAKE"

dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
if [ -z "$dir" ]; then
	go mod download github.com/ollama/ollama >/dev/null
	dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
fi
source=$(go list -m -f '{{.Path}}@{{.Version}}' github.com/ollama/ollama)
commit=$(sed -n 's/.*LLAMA_COMMIT = "\([^"]*\)".*/\1/p' "$dir/llama/build-info.cpp" 2>/dev/null || true)
number=$(sed -n 's/.*LLAMA_BUILD_NUMBER = \([0-9]*\).*/\1/p' "$dir/llama/build-info.cpp" 2>/dev/null || true)

echo "build-system-llama.sh: llama.cpp ${commit:-?} from $source into $prefix"
# shellcheck disable=SC2086 # CMAKE_ARGS is a list of arguments
"$cmake" -S "$here/system-llama" -B "$build" \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_INSTALL_PREFIX="$prefix" \
	-DCMAKE_INSTALL_LIBDIR=lib \
	-DGGML_DIR="$dir/ml/backend/ggml/ggml" \
	-DLLAMA_DIR="$dir/llama/llama.cpp" \
	-DLLAMAGO_GGML_SOURCE="$source" \
	-DLLAMAGO_LLAMA_COMMIT="${commit:-unknown}" \
	-DLLAMAGO_BUILD_NUMBER="${number:-0}" \
	${CMAKE_ARGS:-}
"$cmake" --build "$build" -j "$jobs"
"$cmake" --install "$build" >/dev/null

PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --exists llama 2>/dev/null ||
	echo "build-system-llama.sh: warning: pkg-config does not find llama in $prefix/lib/pkgconfig" >&2
echo "build-system-llama.sh: installed into $prefix; to use it:"
echo "  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig LD_LIBRARY_PATH=$prefix/lib"
echo "  eval \"\$(sh scripts/cgo-env-system.sh)\""
echo "  go test -tags llama_system ./llama/"
