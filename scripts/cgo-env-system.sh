#!/bin/sh
# Prints the cgo environment of the llama_system mode (go build -tags
# llama_system), which links an installed llama.cpp found through
# pkg-config (llama.pc; set PKG_CONFIG_PATH for one outside the default
# places) instead of compiling the pinned module's sources:
#
#   - no include path of llama.cpp or ggml: those of llama.pc are the
#     library's own, and must not be shadowed by the pinned sources';
#   - the include path of llama.cpp's common/ directory in the pinned
#     module, for the JSON Schema converter (llama/jsonschema.cpp), which
#     the package still compiles from there;
#   - -O3 -march=native (PORTABLE=1 drops -march=native) for the package's
#     own C and C++.
#
#	eval "$(sh scripts/cgo-env-system.sh)"
#	go build -tags llama_system ./cmd/llamago
set -eu
dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
if [ -z "$dir" ]; then
	go mod download github.com/ollama/ollama >/dev/null
	dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
fi
opt="-O3"
if [ "${PORTABLE:-0}" != 1 ]; then
	opt="$opt -march=native"
fi
echo "export CGO_ENABLED=1"
echo "export CGO_CPPFLAGS=\"-I$dir/llama/llama.cpp\""
echo "export CGO_CFLAGS=\"$opt\""
echo "export CGO_CXXFLAGS=\"$opt\""
echo "export CGO_LDFLAGS=\"\""
