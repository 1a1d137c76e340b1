#!/bin/sh
# What make vulkan needs: CMake, glslc and the Vulkan headers and loader
# library to build the backend, and a Vulkan driver to run it (Mesa's,
# whose lavapipe device runs the tests on the CPU). As root on Debian or
# Ubuntu it installs what is missing with apt-get (cmake, glslc,
# libvulkan-dev, mesa-vulkan-drivers); elsewhere it says what to install.
#
# With -l it only checks, quietly, that lavapipe is installed (exit 0) or
# not (1): make test runs the Vulkan tests with it.
#
# Exit status: 0 when the build can go ahead (a missing driver is only
# reported: the library builds without one); 3 when something the build
# needs is missing and cannot be installed here; 1 when apt-get fails.
set -u

cxx=${CXX:-c++}
have_cmake() {
	command -v "${CMAKE:-cmake}" >/dev/null 2>&1 || return 1
	v=$("${CMAKE:-cmake}" --version | sed -n 's/^cmake version \([0-9][0-9.]*\).*/\1/p')
	case $v in
	[0-2].* | 3.[0-9] | 3.[0-9].* | 3.1[0-9] | 3.1[0-9].*) return 1 ;;
	esac
}
have_vulkan_dev() {
	printf '#include <vulkan/vulkan.hpp>\n' | "$cxx" -std=c++17 -E -x c++ - >/dev/null 2>&1 &&
		printf 'int main(void){return 0;}\n' | "$cxx" -x c++ - -o /dev/null -lvulkan >/dev/null 2>&1
}
# Mesa's lavapipe: a Vulkan device that computes on the CPU.
have_lavapipe() {
	for f in /usr/share/vulkan/icd.d/lvp_icd.*.json /etc/vulkan/icd.d/lvp_icd.*.json; do
		[ -f "$f" ] && return 0
	done
	return 1
}

missing() {
	m=
	have_cmake || m="$m cmake"
	command -v glslc >/dev/null 2>&1 || m="$m glslc"
	have_vulkan_dev || m="$m libvulkan-dev"
	echo "$m"
}

# -l: only whether lavapipe is installed (the exit status), quietly.
if [ "${1:-}" = -l ]; then
	have_lavapipe
	exit
fi

need=$(missing)
driver=
have_lavapipe || driver=mesa-vulkan-drivers
if [ -z "$need$driver" ]; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "vulkan-deps: installing$need${driver:+ $driver}"
	# shellcheck disable=SC2086 # lists of package names
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need $driver >/dev/null; } || {
		echo "vulkan-deps: apt-get install$need $driver failed" >&2
		exit 1
	}
	need=$(missing)
	[ -z "$need" ] || { echo "vulkan-deps: still missing after apt-get:$need" >&2; exit 1; }
	exit 0
fi
if [ -n "$driver" ]; then
	echo "vulkan-deps: no Mesa Vulkan driver (lavapipe, which the Vulkan tests use): apt-get install mesa-vulkan-drivers (Debian, Ubuntu), dnf install mesa-vulkan-drivers (Fedora)" >&2
fi
if [ -n "$need" ]; then
	echo "vulkan-deps: the Vulkan backend needs, and this machine lacks:$need (CMake 3.20 or newer, the glslc shader compiler, the Vulkan headers and loader)." >&2
	echo "             Install them: apt-get install$need (Debian, Ubuntu); dnf install cmake glslc vulkan-headers vulkan-loader-devel (Fedora);" >&2
	echo "             pacman -S cmake shaderc vulkan-headers vulkan-icd-loader (Arch); or the LunarG Vulkan SDK (https://vulkan.lunarg.com)." >&2
	exit 3
fi
exit 0
