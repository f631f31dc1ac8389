# Issue 18, after the two-pass compile's first pass reads written caches as stand-ins too (they were
# filled for the pass: 1 GiB of ExecuTorch's Gemma 4 at 128k, results/two_pass_h200.md). Run after
# `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md); results under $1. At once: the
# GPU tests; ExecuTorch's Gemma 4 at 1 period in the two-pass mode (stock, low_memory_mode, all four,
# with the output checks); the slice in the two-pass mode.
source "$(dirname "$0")/gpu_chain.sh" "$@"
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -v -rA -p no:cacheprovider tests/gpu > $R/pytest_gpu.log 2>&1 &
P=$!
torch_two_pass_18
P="$P $!"
$B --model executorch:gemma4_31b --target rtx5090 --common-spec autotune_at_compile_time=OFF \
   --backend-spec low_memory_mode=ON --plugins $ALL --peak-breakdown --jobs 3 --out $R/et_two_pass > $R/et_two_pass.log 2>&1 &
wait $P $!
echo all done > $R/DONE
