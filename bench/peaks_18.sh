# Issue 18: where the export peaks once placement builds its views without growing them and
# Triton's tuning copy of a written floating-point argument is a stand-in. Run after `source bench/gpu_setup.sh` (and
# LD_PRELOAD, see bench/README.md); results under $1. At once: the GPU tests; the torch slice
# (its output check, then stock and kv_elide + const_offload one after the other, so their
# compile times compare); ExecuTorch's Gemma 4 31B at 1 period, stock, low_memory_mode, and the
# plugins. Then ExecuTorch at 2 periods, stock and all four, beside the slice in the two-pass mode
# (compile-time autotuning off).
source "$(dirname "$0")/gpu_chain.sh" "$@"
first_phase_18
torch_two_pass_18
$B --model executorch:gemma4_31b --periods 2 --target rtx5090 --plugins $ALL --option const_offload.min_bytes=1MiB \
   --peak-breakdown --jobs 2 --out $R/et_p2 > $R/et_p2.log 2>&1
wait
echo all done > $R/DONE
