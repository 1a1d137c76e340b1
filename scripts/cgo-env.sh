#!/bin/sh
# Prints the cgo environment that builds github.com/llamago/llamago/llama:
# the include paths of llama.cpp inside the pinned github.com/ollama/ollama
# module, CPU weight repacking, and -O3 -march=native (PORTABLE=1 drops
# -march=native). Use it from any module that imports the package:
#
#	eval "$(go run ... or sh scripts/cgo-env.sh)"; go build ./...
set -eu
dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
if [ -z "$dir" ]; then
	go mod download github.com/ollama/ollama >/dev/null
	dir=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
fi
ggml="$dir/ml/backend/ggml/ggml"
cppflags="-I$dir/llama/llama.cpp/include -I$ggml/include -I$ggml/src -I$ggml/src/ggml-cpu -DGGML_USE_CPU_REPACK"
opt="-O3"
if [ "${PORTABLE:-0}" != 1 ]; then
	opt="$opt -march=native"
fi
echo "export CGO_ENABLED=1"
echo "export CGO_CPPFLAGS=\"$cppflags\""
echo "export CGO_CFLAGS=\"$opt\""
echo "export CGO_CXXFLAGS=\"$opt\""
