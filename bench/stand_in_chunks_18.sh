# Issue 18, after chunked_dequant's auto chunks calls on stand-in weights to its budget (the 5376-row
# down projection it left whole in ExecuTorch's Gemma 4, 909.6 MiB: results/caches_two_pass_h200.md).
# Run after `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md); results under $1. At once:
# the GPU tests; ExecuTorch's Gemma 4 at 1 period in the two-pass mode, stock and all four only (two
# compiles, 8 compile threads each: about 8 min with the weights and the output checks).
source "$(dirname "$0")/gpu_chain.sh" "$@"
gpu_tests_18
P=$!
TORCHINDUCTOR_COMPILE_THREADS=8 et_two_pass_18 --jobs 2
wait $P $!
echo all done > $R/DONE
