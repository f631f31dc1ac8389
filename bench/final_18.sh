# Issue 18, after c2a5a51 (Triton's tuning copy of any written floating-point argument is a stand-in,
# one per argument) and const_offload's 1 MiB default. Run after `source bench/gpu_setup.sh` (and
# LD_PRELOAD, see bench/README.md); results under $1. At once: the GPU tests; the torch slice (its output
# check, then stock and kv_elide + const_offload one after the other, so their compile times compare);
# ExecuTorch's Gemma 4 31B at 1 period, stock, low_memory_mode, and the plugins. Then, at once: the slice
# in the two-pass mode (compile-time autotuning off), and the seed's own decoder (demo:gpu @128k) in the
# torch backend (bench, then its output check at 16k) and through CudaBackend (stock, low_memory_mode,
# all four), and the slice through CudaBackend (stock, all four: max-autotune's fusion benchmark).
source "$(dirname "$0")/gpu_chain.sh" "$@"
first_phase_18
torch_two_pass_18
(
  $B --model demo:gpu --ctx 131072 --plugins $ALL --peak-breakdown --jobs 2 --out $R/gpu_torch > $R/gpu_torch.log 2>&1
  $A demo --config gpu --ctx 16384 --plugins $ALL --json > $R/demo_gpu.json 2> $R/demo_gpu.log
) &
$B --model demo:gpu --ctx 131072 --backend executorch --backend-spec low_memory_mode=ON --plugins $ALL \
   --peak-breakdown --jobs 3 --out $R/gpu_et > $R/gpu_et.log 2>&1 &
slice_et_18
wait
echo all done > $R/DONE
