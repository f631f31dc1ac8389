# Issue 18, after the two-pass compile's first pass reads placed weights as stand-ins (no more
# host refusals there). Run after `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md);
# results under $1. First phase as final_18.sh (the GPU tests, now both autotune modes; the torch
# slice; ExecuTorch's Gemma 4 at 1 period with its output checks). Then, at once: the slice in the
# two-pass mode (stock, then kv_elide + const_offload); ExecuTorch's Gemma 4 at 1 period in the
# two-pass mode (CudaBackend's autotune_at_compile_time=OFF: stock, low_memory_mode, all four, with
# the output checks); the slice through CudaBackend (stock, all four).
source "$(dirname "$0")/gpu_chain.sh" "$@"
first_phase_18
torch_two_pass_18
$B --model executorch:gemma4_31b --target rtx5090 --common-spec autotune_at_compile_time=OFF \
   --backend-spec low_memory_mode=ON --plugins $ALL --peak-breakdown --jobs 3 --out $R/et_two_pass > $R/et_two_pass.log 2>&1 &
slice_et_18
wait
echo all done > $R/DONE
