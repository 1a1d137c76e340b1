# llamago: build, test and run. Every target gets its cgo flags from
# scripts/cgo-env.sh (llama.cpp's include paths inside the pinned
# github.com/ollama/ollama module, -O3 -march=native, CPU weight repacking).
# PORTABLE=1 drops -march=native for a binary that runs on any CPU of the
# architecture.

GO      ?= go
PORTABLE ?= 0
MODELS  ?= ../shared/models
PROMPT  ?= Once upon a time
# Where make system-llama installs llama.cpp built by its own CMake (the
# baseline of make bench links it); set before the rules that name it.
SYSTEM_LLAMA ?= $(HOME)/.cache/llamago/system-llama
export PORTABLE

CGOENV := eval "$$(sh scripts/cgo-env.sh)" &&

.PHONY: all deps build test run clean vet fmt tidy-check

all: build

# llama.cpp's common library, which holds its JSON Schema to grammar
# converter, includes nlohmann/json; the Go module leaves llama.cpp's copy
# out with its vendor directory, so the build takes the system's. deps
# installs it where it can (root on Debian or Ubuntu, as in CI) and says
# what to install elsewhere.
deps:
	@if ! printf '#include <nlohmann/json.hpp>\n' | $$($(GO) env CXX) $$($(GO) env CGO_CPPFLAGS) -std=c++17 -E -x c++ - >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "deps: installing nlohmann-json3-dev (nlohmann/json.hpp, for llama.cpp's common library)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nlohmann-json3-dev; \
		else \
			echo "deps: the C++ compiler does not find nlohmann/json.hpp, which llama.cpp's common library needs." >&2; \
			echo "      Install nlohmann-json: apt-get install nlohmann-json3-dev (Debian, Ubuntu), dnf install json-devel" >&2; \
			echo "      (Fedora), brew install nlohmann-json (macOS; add its include directory to CGO_CPPFLAGS)," >&2; \
			echo "      or put json.hpp and json_fwd.hpp from https://github.com/nlohmann/json in an nlohmann/ directory" >&2; \
			echo "      on the include path." >&2; \
			exit 1; \
		fi; \
	fi

build: deps
	$(CGOENV) $(GO) build -trimpath -o bin/llamago ./cmd/llamago

# The README's test command: go.mod and go.sum as go mod tidy leaves them,
# vet, then every package's tests under the race detector (one build of
# llama.cpp serves both). The tests of the Vulkan backend run on Mesa's
# lavapipe, a Vulkan device on the CPU: vulkan-for-test builds the backend
# first, into $(VULKAN_TEST_DIR) rather than lib/llamago, where bin/llamago
# would load it (nothing to do once built); LLAMAGO_TEST_VULKAN_DIR points
# the tests there, and LLAMAGO_TEST_VULKAN=1 makes them fail rather than
# skip if it or lavapipe is missing. Where the build tools cannot be
# installed (not root, or not Debian or Ubuntu) it says what to install,
# and the Vulkan tests skip.
test: deps tidy-check vulkan-for-test
	$(CGOENV) $(GO) vet ./...
	$(CGOENV) LLAMAGO_TEST_VULKAN_DIR=$(VULKAN_TEST_DIR) \
		LLAMAGO_TEST_VULKAN=$${LLAMAGO_TEST_VULKAN:-$$([ -f $(VULKAN_TEST_DIR)/libggml-vulkan.so ] && sh scripts/vulkan-deps.sh -l && echo 1 || echo 0)} \
		$(GO) test -race -timeout 30m -count=1 ./...

run: build
	./bin/llamago run -m $(MODELS)/stories260K.gguf -n 128 --temp 0 "$(PROMPT)"

vet: deps
	$(CGOENV) $(GO) vet ./...

# tidy-check fails, showing the difference, when go.mod or go.sum is not as
# go mod tidy would write it.
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy" >&2; exit 1; }

fmt:
	gofmt -l -w .

clean:
	rm -rf bin
	$(GO) clean -testcache

# Benchmarks: synthesizes the benchmark models once into $(BENCH_DIR) (the
# llama-60m and tinyllama-1.1b shapes at F16, Q8_0, Q4_K_M and Q4_0, about
# 5 GB), runs `llamago bench` over them and stories260K, measures the memory
# bandwidth and the server's throughput, and rewrites the generated sections
# of docs/benchmarks.md, with docs/benchmarks.svg and docs/benchmarks.jsonl.
# Roughly 20 minutes on two cores. BENCH_FLAGS=-quick checks the pipeline in
# a minute or two and prints the tables instead of writing the document;
# BENCH_FLAGS=-render rewrites the document from the last run's results.
BENCH_DIR   ?= $(HOME)/.cache/llamago/bench
BENCH_FLAGS ?=

.PHONY: bench bench-baseline bench-cmake baseline cmake-deps
bench: build baseline
	$(CGOENV) $(GO) run ./scripts/benchdata -bin bin/llamago -baseline bin/llamago-baseline -dir $(BENCH_DIR) -models $(MODELS) -doc docs/benchmarks.md $(BENCH_FLAGS)

# bench-baseline runs only make bench's comparison with the C baseline
# (about 20 minutes on two cores) and rewrites its section.
bench-baseline: build baseline
	$(CGOENV) $(GO) run ./scripts/benchdata -bin bin/llamago -baseline bin/llamago-baseline -baseline-only -dir $(BENCH_DIR) -models $(MODELS) -doc docs/benchmarks.md $(BENCH_FLAGS)

# baseline builds bin/llamago-baseline, the out-of-process yardstick of
# make bench: scripts/baseline/baseline.c, a C program that times pp and
# tg as llama-bench does, linked with llama.cpp as ggml's CMake builds it
# from the pinned sources (the libraries of make system-llama).
baseline: $(SYSTEM_LLAMA)/lib/pkgconfig/llama.pc
	$$($(GO) env CC) -O2 -o bin/llamago-baseline scripts/baseline/baseline.c \
		-I$(SYSTEM_LLAMA)/include -L$(SYSTEM_LLAMA)/lib -Wl,-rpath,$(SYSTEM_LLAMA)/lib \
		-lllama -lggml -lggml-cpu -lggml-base -lm

# CMake builds the system-llama libraries; installed here as root on
# Debian or Ubuntu, as nlohmann/json is by deps.
cmake-deps:
	@if ! command -v $${CMAKE:-cmake} >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "cmake-deps: installing cmake"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake; \
		else \
			echo "cmake-deps: CMake not found: install CMake 3.18 or newer (apt-get install cmake, or pip install cmake)" >&2; \
			exit 1; \
		fi; \
	fi

# bench-cmake runs the same benchmarks with bin/llamago and with a llamago
# linked with llama.cpp built by ggml's own CMake from the same sources (the
# libraries of make system-llama, as upstream builds them), alternately,
# and rewrites the "cmake" section of docs/benchmarks.md: what compiling
# llama.cpp through cgo costs or gains. About 6 minutes on two cores (and
# 10 to build the libraries the first time);
# BENCH_FLAGS=-render rewrites the section from the last run's results.
bench-cmake: build build-system
	$(CGOENV) LD_LIBRARY_PATH="$(SYSTEM_LLAMA)/lib" $(GO) run ./scripts/benchdata -bin bin/llamago -cmake bin/llamago-system \
		-dir $(BENCH_DIR) -models $(MODELS) -doc docs/benchmarks.md $(BENCH_FLAGS)

# GPU backends and an installed llama.cpp; see docs/gpu.md.
#
#   make vulkan        builds ggml's Vulkan backend into lib/llamago (below)
#   make cuda          builds ggml's CUDA backend (nvcc and CMake needed;
#                      CUDA_ARCHS=86 etc. to build for other GPUs than this
#                      machine's) into lib/llamago, where bin/llamago loads
#                      it from at start-up (check with bin/llamago devices)
#   make system-llama  builds llama.cpp as shared libraries with llama.pc
#                      from the pinned module into $(SYSTEM_LLAMA)
#   make test-system   runs the llama and cmd/llamago tests against them,
#                      built with -tags llama_system
SYSTEM_ENV   := eval "$$(sh scripts/cgo-env-system.sh)" && \
	export PKG_CONFIG_PATH="$(SYSTEM_LLAMA)/lib/pkgconfig" LD_LIBRARY_PATH="$(SYSTEM_LLAMA)/lib" &&

.PHONY: cuda system-llama test-system build-system gpu-proof-pack
cuda:
	sh scripts/build-cuda.sh -o lib/llamago

# make vulkan builds ggml's Vulkan backend, lib/llamago/libggml-vulkan.so,
# from the pinned module's sources and shaders (CMake, glslc and the Vulkan
# headers; installed as root on Debian or Ubuntu, with Mesa's Vulkan
# drivers, by scripts/vulkan-deps.sh). The CMake build directory is kept in
# $(VULKAN_BUILD), so a rebuild after go.mod changes compiles only what
# changed, and make does nothing while the library is newer than its sources.
# The first build compiles 1,428 shader variants: 18 minutes on
# two cores.
VULKAN_LIB   := lib/llamago/libggml-vulkan.so
VULKAN_BUILD ?= $(HOME)/.cache/llamago/build-vulkan
VULKAN_TEST_DIR ?= $(VULKAN_BUILD)/test-lib
VULKAN_JOBS  ?= $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
VULKAN_SRCS  := go.mod scripts/build-vulkan.sh scripts/cuda/stamp.c \
	$(wildcard scripts/vulkan/*.txt scripts/vulkan/*.h scripts/vulkan/*.in scripts/vulkan/feature-tests/*.comp)

.PHONY: vulkan vulkan-deps vulkan-for-test
vulkan: vulkan-deps
	@$(MAKE) --no-print-directory $(VULKAN_LIB)

vulkan-deps:
	@sh scripts/vulkan-deps.sh

$(VULKAN_LIB): $(VULKAN_SRCS)
	sh scripts/build-vulkan.sh -o lib/llamago -j $(VULKAN_JOBS) -B $(VULKAN_BUILD)

$(VULKAN_TEST_DIR)/libggml-vulkan.so: $(VULKAN_SRCS)
	sh scripts/build-vulkan.sh -o $(VULKAN_TEST_DIR) -j $(VULKAN_JOBS) -B $(VULKAN_BUILD)

# vulkan-for-test is make vulkan, for make test's directory, where the
# tools are there or can be installed, and a message otherwise (exit status
# 3 of vulkan-deps.sh).
vulkan-for-test:
	@sh scripts/vulkan-deps.sh; rc=$$?; \
	if [ $$rc = 0 ]; then $(MAKE) --no-print-directory $(VULKAN_TEST_DIR)/libggml-vulkan.so; \
	elif [ $$rc = 3 ]; then echo "make test: the Vulkan backend is not built (see above): its tests will skip"; \
	else exit $$rc; fi

# gpu-proof-pack fills .gl/ (ignored by git) with what scripts/gpu-proof.sh
# needs on a GPU machine without Go: a portable llamago with its CPU
# variant libraries (that machine may have another CPU), the module's ggml
# sources and version, and the SPM vocabulary.
gpu-proof-pack: portable
	mkdir -p .gl/ollama/ml/backend/ggml .gl/ollama/llama
	cp $(PORTABLE_DIR)/llamago $(PORTABLE_DIR)/libggml-cpu-*.so .gl/
	dir=$$($(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama) && \
		rm -rf .gl/ollama/ml/backend/ggml/ggml && \
		cp -R "$$dir/ml/backend/ggml/ggml" .gl/ollama/ml/backend/ggml/ && \
		cp "$$dir/llama/build-info.cpp" .gl/ollama/llama/ && chmod -R u+w .gl/ollama
	$(GO) list -m -f '{{.Path}}@{{.Version}}' github.com/ollama/ollama >.gl/ollama.source
	cp $(MODELS)/vocab/ggml-vocab-llama-spm.gguf .gl/vocab.gguf
	du -sh .gl

system-llama: cmake-deps
	sh scripts/build-system-llama.sh $(SYSTEM_LLAMA)

$(SYSTEM_LLAMA)/lib/pkgconfig/llama.pc: | cmake-deps
	sh scripts/build-system-llama.sh $(SYSTEM_LLAMA)

build-system: deps $(SYSTEM_LLAMA)/lib/pkgconfig/llama.pc
	$(SYSTEM_ENV) $(GO) build -tags llama_system -trimpath -o bin/llamago-system ./cmd/llamago

test-system: deps $(SYSTEM_LLAMA)/lib/pkgconfig/llama.pc
	$(SYSTEM_ENV) $(GO) vet -tags llama_system ./llama/ ./cmd/llamago/
	$(SYSTEM_ENV) $(GO) test -tags llama_system -count=1 -timeout 30m ./llama/ ./cmd/llamago/

# Portable builds; see docs/portable.md.
#
#   make portable        $(PORTABLE_DIR)/llamago with generic x86-64 code
#                        (PORTABLE=1) and, beside it, ggml's CPU backend built
#                        for each x86-64 microarchitecture (libggml-cpu-haswell.so,
#                        ...; CPU_VARIANTS="haswell zen4" for fewer): at start-up
#                        the executable loads the best one for the CPU it runs on
#   make portable-check  measures native bin/llamago against the portable one,
#                        without and with the libraries, on PORTABLE_MODELS
PORTABLE_DIR    ?= bin/portable
CPU_VARIANTS    ?= all
PORTABLE_MODELS ?= $(MODELS)/stories260K.gguf
PORTABLE_ROUNDS ?= 3
PORTABLE_BENCH  ?= -p 128 -n 32 -r 3 -t 1

.PHONY: portable cpu-variants portable-check
portable: cpu-variants
	eval "$$(PORTABLE=1 sh scripts/cgo-env.sh)" && $(GO) build -trimpath -o $(PORTABLE_DIR)/llamago ./cmd/llamago

cpu-variants:
	@if [ "$$(uname -s)/$$(uname -m)" = Linux/x86_64 ]; then \
		sh scripts/cpu-variants.sh -o $(PORTABLE_DIR) $(CPU_VARIANTS); \
	else \
		echo "no CPU variant libraries for $$(uname -s)/$$(uname -m): $(PORTABLE_DIR)/llamago uses its generic code"; \
	fi

portable-check: build portable
	$(GO) run ./scripts/portablecheck -native bin/llamago -portable $(PORTABLE_DIR)/llamago \
		-m $(PORTABLE_MODELS) -rounds $(PORTABLE_ROUNDS) -bench "$(PORTABLE_BENCH)"

# Windows, cross-compiled with Debian's MinGW-w64 and tested under Wine; see
# docs/windows.md. Nothing is installed: a missing tool stops the target with
# the Debian packages to install.
#
#   make windows       bin/llamago.exe, statically linked (no DLLs to ship),
#                      for x86-64-v3 (AVX2) CPUs; WINDOWS_MARCH=x86-64-v2 or
#                      PORTABLE=1 (any x86-64) for older ones
#   make windows-test  the tests of every package under Wine (all but
#                      the known failures of docs/windows.md, or
#                      WINDOWS_TESTS, a -run pattern), and `llamago.exe
#                      run` with the greedy text compared with bin/llamago's
WINDOWS_MARCH ?= x86-64-v3
WINDOWS_TESTS ?=
WINE          ?= $(shell command -v wine64 || command -v wine || ls /usr/lib/wine/wine64 2>/dev/null)
WINCGOENV     := eval "$$(TARGET=windows MARCH=$(WINDOWS_MARCH) sh scripts/cgo-env.sh)" &&

.PHONY: windows windows-test windows-tools wine-tools
windows: windows-tools
	$(WINCGOENV) $(GO) build -trimpath -o bin/llamago.exe ./cmd/llamago

windows-tools:
	@missing=; \
	command -v x86_64-w64-mingw32-gcc-posix >/dev/null 2>&1 || missing="$$missing gcc-mingw-w64-x86-64-posix"; \
	command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 || missing="$$missing g++-mingw-w64-x86-64-posix"; \
	[ -n "$$NLOHMANN_INCLUDE" ] || [ -f /usr/include/nlohmann/json.hpp ] || [ -f /usr/local/include/nlohmann/json.hpp ] || \
		missing="$$missing nlohmann-json3-dev"; \
	if [ -n "$$missing" ]; then \
		echo "make windows cross-compiles with MinGW-w64 (POSIX threads) and needs nlohmann/json's headers; install the Debian packages:" >&2; \
		echo "  apt-get install$$missing" >&2; \
		exit 1; \
	fi

wine-tools:
	@if [ -z "$(WINE)" ]; then \
		echo "make windows-test runs the Windows binaries under Wine; install the Debian package:" >&2; \
		echo "  apt-get install wine64" >&2; \
		exit 1; \
	fi

windows-test: windows wine-tools build
	WINE="$(WINE)" WINDOWS_TESTS="$(WINDOWS_TESTS)" MODELS="$(MODELS)" \
		WINDOWS_MARCH="$(WINDOWS_MARCH)" sh scripts/windows-test.sh
