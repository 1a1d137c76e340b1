# llamago: build, test and run. Every target gets its cgo flags from
# scripts/cgo-env.sh (llama.cpp's include paths inside the pinned
# github.com/ollama/ollama module, -O3 -march=native, CPU weight repacking).
# PORTABLE=1 drops -march=native for a binary that runs on any CPU of the
# architecture.

GO      ?= go
PORTABLE ?= 0
MODELS  ?= ../shared/models
PROMPT  ?= Once upon a time
export PORTABLE

CGOENV := eval "$$(sh scripts/cgo-env.sh)" &&

.PHONY: all deps build test run clean vet fmt

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

# The README's test command: vet, then every package's tests under the race
# detector (one build of llama.cpp serves both).
test: deps
	$(CGOENV) $(GO) vet ./...
	$(CGOENV) $(GO) test -race -timeout 30m -count=1 ./...

run: build
	./bin/llamago run -m $(MODELS)/stories260K.gguf -n 128 --temp 0 "$(PROMPT)"

vet: deps
	$(CGOENV) $(GO) vet ./...

fmt:
	gofmt -l -w .

clean:
	rm -rf bin
	$(GO) clean -testcache

# Benchmarks: synthesizes the benchmark models once into $(BENCH_DIR) (the
# llama-60m and tinyllama-1.1b shapes at F16, Q8_0, Q4_K_M and Q4_0, about
# 5 GB), runs `llamago bench` over them and stories260K, measures the memory
# bandwidth, and rewrites the generated sections of docs/benchmarks.md, with
# docs/benchmarks.svg and docs/benchmarks.jsonl. Roughly 20 minutes on two
# cores. BENCH_FLAGS=-quick checks the pipeline in a minute or two and prints
# the tables instead of writing the document.
BENCH_DIR   ?= $(HOME)/.cache/llamago/bench
BENCH_FLAGS ?=

.PHONY: bench
bench: build
	$(CGOENV) $(GO) run ./scripts/benchdata -bin bin/llamago -dir $(BENCH_DIR) -models $(MODELS) -doc docs/benchmarks.md $(BENCH_FLAGS)
