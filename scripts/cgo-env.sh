#!/bin/sh
# Prints the cgo environment that builds github.com/llamago/llamago/llama:
#
#   - include paths of llama.cpp inside the pinned github.com/ollama/ollama
#     module (llama.h, ggml.h, and the ggml sources the AMX kernels need);
#   - CPU weight repacking (-DGGML_USE_CPU_REPACK), which the module's own
#     cgo packages leave out;
#   - -O3 -march=native (PORTABLE=1 drops -march=native);
#   - OpenMP for ggml's CPU threads, as upstream builds it, when the C
#     compiler supports -fopenmp (LLAMAGO_OPENMP=0 turns it off).
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
cppflags="-I$dir/llama/llama.cpp/include -I$dir/llama/llama.cpp -I$ggml/include -I$ggml/src -I$ggml/src/ggml-cpu -DGGML_USE_CPU_REPACK"
opt="-O3"
if [ "${PORTABLE:-0}" != 1 ]; then
	opt="$opt -march=native"
fi
ldflags=""
if [ "${LLAMAGO_OPENMP:-1}" != 0 ]; then
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
echo "export CGO_ENABLED=1"
echo "export CGO_CPPFLAGS=\"$cppflags\""
echo "export CGO_CFLAGS=\"$opt\""
echo "export CGO_CXXFLAGS=\"$opt\""
echo "export CGO_LDFLAGS=\"$ldflags\""
