# Issue 18, after the two-pass compile's first pass reads written caches as stand-ins too (they were
# filled for the pass: 1 GiB of ExecuTorch's Gemma 4 at 128k, results/two_pass_h200.md). Run after
# `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md); results under $1. At once: the
# GPU tests; ExecuTorch's Gemma 4 at 1 period in the two-pass mode (stock, low_memory_mode, all four,
# with the output checks); the slice in the two-pass mode.
source "$(dirname "$0")/gpu_chain.sh" "$@"
gpu_tests_18
P=$!
torch_two_pass_18
P="$P $!"
et_two_pass_18 --backend-spec low_memory_mode=ON --jobs 3
wait $P $!
echo all done > $R/DONE
