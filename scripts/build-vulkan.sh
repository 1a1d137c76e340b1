#!/bin/sh
# Builds ggml's Vulkan backend as a library that llamago loads at run time
# (ggml's GGML_BACKEND_DL mechanism), from the ggml sources and GLSL shaders
# of the same pinned github.com/ollama/ollama module that the llama package
# compiles in, with CMake and glslc, through our own CMake entry point
# (scripts/vulkan/CMakeLists.txt). Nothing of the module is copied.
#
# Usage: sh scripts/build-vulkan.sh [-o DIR] [-j JOBS] [-B BUILD_DIR]
#
#   -o DIR        where the libraries go (default lib/llamago, which
#                 bin/llamago searches as ../lib/llamago)
#   -j JOBS       parallel compile jobs (default: the number of CPUs)
#   -B BUILD_DIR  CMake's build directory (default
#                 ${XDG_CACHE_HOME:-$HOME/.cache}/llamago/build-vulkan); it is
#                 kept, so a second build of the same sources compiles nothing
#
# Environment:
#   CMAKE         cmake (default: cmake on PATH)
#   CMAKE_ARGS    more arguments for the configure step, e.g.
#                 "-DGGML_VULKAN_VALIDATE=ON"
#   LLAMAGO_OLLAMA_DIR, LLAMAGO_OLLAMA_SOURCE
#                 a copy of the module's ggml sources (ml/backend/ggml/ggml
#                 and llama/build-info.cpp under it) and its path@version,
#                 where there is no go command to find the module
#
# Needs CMake 3.20 or newer, a C++17 compiler, glslc (the shader compiler)
# and the Vulkan headers and loader library (Debian/Ubuntu: apt-get install
# cmake glslc libvulkan-dev; `make vulkan` installs them as root there). To
# run, a Vulkan driver: the GPU vendor's, or Mesa's (mesa-vulkan-drivers,
# which includes lavapipe, a Vulkan device that computes on the CPU).
#
# Output: DIR/libggml-vulkan.so, the backend, and DIR/libggml-base.so.0,
# the ggml base library it links with (found beside it through RUNPATH
# $ORIGIN). The backend is stamped with the module version
# (llamago_ggml_source); the llama package refuses a library with another
# stamp, or none. Rebuild it whenever go.mod's github.com/ollama/ollama
# changes (make vulkan does). See docs/gpu.md.
set -eu

die() {
	echo "build-vulkan.sh: $*" >&2
	exit 1
}

out=lib/llamago
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
build="${XDG_CACHE_HOME:-$HOME/.cache}/llamago/build-vulkan"
usage="usage: $0 [-o DIR] [-j JOBS] [-B BUILD_DIR]"
while getopts o:j:B: opt; do
	case $opt in
	o) out=$OPTARG ;;
	j) jobs=$OPTARG ;;
	B) build=$OPTARG ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "$usage" >&2; exit 2; }
case $jobs in
'' | *[!0-9]* | 0) die "-j $jobs: the number of jobs must be a positive integer" ;;
esac

here=$(cd "$(dirname "$0")" && pwd)

# CMake, 3.20 or newer (scripts/vulkan/CMakeLists.txt).
cmake=${CMAKE:-cmake}
if ! command -v "$cmake" >/dev/null 2>&1; then
	die "CMake not found ($cmake): install CMake 3.20 or newer (Debian/Ubuntu: apt-get install cmake; or pip install cmake), or set CMAKE"
fi
cmake_version=$("$cmake" --version | sed -n 's/^cmake version \([0-9][0-9.]*\).*/\1/p')
case $cmake_version in
[0-2].* | 3.[0-9] | 3.[0-9].* | 3.1[0-9] | 3.1[0-9].*)
	die "CMake $cmake_version is too old: 3.20 or newer is needed" ;;
esac

# glslc and the Vulkan headers and library: all named at once.
missing=
command -v glslc >/dev/null 2>&1 || missing="$missing glslc"
cxx=${CXX:-c++}
if ! printf '#include <vulkan/vulkan.hpp>\n' | "$cxx" -std=c++17 -E -x c++ - >/dev/null 2>&1; then
	missing="$missing libvulkan-dev"
elif ! printf 'int main(void){return 0;}\n' | "$cxx" -x c++ - -o /dev/null -lvulkan >/dev/null 2>&1; then
	missing="$missing libvulkan-dev"
fi
if [ -n "$missing" ]; then
	die "missing:$missing. Install them (Debian/Ubuntu: apt-get install$missing; Fedora: dnf install glslc vulkan-headers vulkan-loader-devel; Arch: pacman -S shaderc vulkan-headers vulkan-icd-loader), or the LunarG Vulkan SDK (https://vulkan.lunarg.com), with glslc on PATH"
fi

# The pinned module: its ggml sources and its version, the stamp.
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
[ -f "$ggml/src/ggml-vulkan/CMakeLists.txt" ] || die "$ggml/src/ggml-vulkan/CMakeLists.txt not found: the module has no Vulkan sources?"

mkdir -p "$build"
# One build at a time in the build directory (two worktrees, say).
if command -v flock >/dev/null 2>&1 && [ -z "${LLAMAGO_BUILD_LOCKED:-}" ]; then
	LLAMAGO_BUILD_LOCKED=1 exec flock "$build/.lock" sh "$0" -o "$out" -j "$jobs" -B "$build"
fi

# Our CMake files, copied into the build directory: CMake ties a build
# directory to one source directory, and checkouts of the repository in
# other places (worktrees) share this one. Only changed files are written,
# so that nothing is rebuilt for nothing.
src="$build/src"
mkdir -p "$src/vulkan/feature-tests" "$src/cuda"
sync_file() {
	cmp -s "$1" "$2" || cp -f "$1" "$2"
}
for f in CMakeLists.txt layer_settings_compat.h glslc.sh.in; do
	sync_file "$here/vulkan/$f" "$src/vulkan/$f"
done
for f in "$here"/vulkan/feature-tests/*.comp; do
	sync_file "$f" "$src/vulkan/feature-tests/${f##*/}"
done
sync_file "$here/cuda/stamp.c" "$src/cuda/stamp.c"
# A build directory configured from elsewhere (before the copies) is
# configured again.
if [ -f "$build/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$src/vulkan" "$build/CMakeCache.txt"; then
	rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi

echo "build-vulkan.sh: ggml from $source, glslc $(glslc --version 2>/dev/null | sed -n '1s/^[^ ]* //p'), build directory $build"
# shellcheck disable=SC2086 # CMAKE_ARGS is a list of arguments
"$cmake" -S "$src/vulkan" -B "$build" \
	-DCMAKE_BUILD_TYPE=Release \
	-DGGML_DIR="$ggml" \
	-DLLAMAGO_GGML_SOURCE="$source" \
	-DLLAMAGO_LLAMA_COMMIT="${commit:-unknown}" \
	${CMAKE_ARGS:-} >"$build/configure.log" 2>&1 || {
	cat "$build/configure.log" >&2
	die "the CMake configure step failed (log above, and in $build/configure.log)"
}
# Which optional shader variants this glslc compiles (the build's own tests).
sed -n 's/^-- \(GL_[A-Za-z0-9_]* .*supported by glslc\)$/build-vulkan.sh: \1/p' "$build/configure.log"
"$cmake" --build "$build" --target ggml-vulkan -j "$jobs"

lib="$build/bin"
[ -f "$lib/libggml-vulkan.so" ] || die "the build made no $lib/libggml-vulkan.so"
# The backend asks for libggml-base.so.0 (the SONAME; DT_NEEDED).
[ -e "$lib/libggml-base.so.0" ] || die "the build made no $lib/libggml-base.so.0"
mkdir -p "$out"
# A running llamago may have the old library mapped: overwriting it in place
# would crash it, so a changed file is renamed over the old one; an
# unchanged one is only touched (make compares the times).
put() {
	if cmp -s "$1" "$2"; then
		touch "$2"
	else
		cp -fL "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
	fi
}
put "$lib/libggml-vulkan.so" "$out/libggml-vulkan.so"
put "$lib/libggml-base.so.0" "$out/libggml-base.so.0"
echo "build-vulkan.sh: wrote $out/libggml-vulkan.so and $out/libggml-base.so.0"
if [ "$out" = lib/llamago ]; then
	echo "build-vulkan.sh: bin/llamago loads them from ../lib/llamago; elsewhere set LLAMAGO_BACKEND_PATH=$(cd "$out" && pwd)"
else
	echo "build-vulkan.sh: to use them, set LLAMAGO_BACKEND_PATH=$(cd "$out" && pwd)"
fi
echo "build-vulkan.sh: check with: bin/llamago devices (a CPU Vulkan device such as lavapipe only with GGML_VK_VISIBLE_DEVICES=0)"
