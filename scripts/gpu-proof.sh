#!/bin/sh
# The proof on a GPU (docs/gpu.md): run once on a machine with an NVIDIA GPU
# and the CUDA Toolkit but no Go, from the repository root, after
# `make gpu-proof-pack` filled .gl/ on a machine with Go:
#
#   .gl/llamago             a portable llamago (any x86-64 CPU), with
#                           its CPU variant libraries beside it
#   .gl/ollama/             the pinned module's ggml sources
#                           (ml/backend/ggml/ggml, llama/build-info.cpp)
#   .gl/ollama.source       the module's path@version, the backend's stamp
#   .gl/vocab.gguf          llama.cpp's SPM vocabulary, for the model
#
# It builds ggml's CUDA backend from those sources (scripts/build-cuda.sh),
# lists the devices, synthesizes a tinyllama-1.1b-shaped Q4_0 model, checks
# that the first greedy tokens with every layer on the GPU are those of the
# CPU, and runs pp512/tg128 with -ngl 0 and 99; the bench table goes to
# $OUT/bench.md as well (default ./gpu-proof). On the device tool:
#
#   run(command="sh scripts/gpu-proof.sh", carry=[".gl"], timeout_s=600)
#
# GPU_PROOF_REHEARSAL=1 runs all but the CUDA build, on the CPU.
set -eu

out=${OUT:-gpu-proof}
mkdir -p "$out"

gl=.gl
for f in llamago ollama ollama.source vocab.gguf; do
	[ -e "$gl/$f" ] || { echo "gpu-proof.sh: $gl/$f is missing: run make gpu-proof-pack on a machine with Go" >&2; exit 2; }
done
bin=$gl/llamago
tmp=${TMPDIR:-/tmp}/llamago-gpu-proof
mkdir -p "$tmp"

echo "== nvidia-smi"
nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv || true

if [ -n "${GPU_PROOF_REHEARSAL:-}" ]; then
	# A rehearsal on a machine without a GPU: everything but the build.
	echo "== rehearsal: no CUDA backend built"
else
	echo "== build the CUDA backend"
	t0=$(date +%s)
	LLAMAGO_OLLAMA_DIR=$gl/ollama LLAMAGO_OLLAMA_SOURCE=$(cat "$gl/ollama.source") \
		sh scripts/build-cuda.sh -o "$gl/lib" -B "$tmp/build" -R
	echo "built in $(($(date +%s) - t0)) s"
	export LLAMAGO_BACKEND_PATH=$gl/lib
fi

echo "== llamago version, devices"
"$bin" version
"$bin" devices

model=$tmp/tinyllama-1.1b-Q4_0.gguf
if [ ! -f "$model" ]; then
	echo "== synthesize $model"
	"$bin" synth --shape tinyllama-1.1b --vocab "$gl/vocab.gguf" --type Q4_0 -o "$model"
fi

echo "== greedy text, CPU against GPU"
prompt="Once upon a time"
cpu=$("$bin" run -m "$model" --temp 0 -n 32 -ngl 0 "$prompt")
gpu=$("$bin" run -m "$model" --temp 0 -n 32 -ngl -1 "$prompt")
printf 'cpu: %s\ngpu: %s\n' "$cpu" "$gpu"
status=0
if [ "$cpu" = "$gpu" ]; then
	echo "same text"
else
	echo "DIFFERENT text (random weights: the first tokens should still agree)"
	status=1
fi

echo "== bench pp512, tg128: -ngl 0 and 99"
"$bin" bench -m "$model" -p 512 -n 128 -ngl 0,99 -r 3 -o md | tee "$out/bench.md"
exit $status
