# Issue 18, after the two-pass compile's first pass reads placed weights as stand-ins (no more
# host refusals there). Run after `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md);
# results under $1. At once: the GPU tests (both autotune modes, max-autotune); ExecuTorch's Gemma 4
# at 1 period in the default mode (stock, all four: its output checks; low_memory_mode and
# kv_elide + chunked_dequant there are in results/choice_h200.md) and in the two-pass mode
# (CudaBackend's autotune_at_compile_time=OFF: stock, low_memory_mode, all four, with the output
# checks); the slice in the two-pass mode. Then the slice through CudaBackend and the slice's
# output check (`aoti-hooks demo`). Free host memory is logged every 10 s (host_mem.log): five
# ExecuTorch compiles at once hold ~17 GiB each.
source "$(dirname "$0")/gpu_chain.sh" "$@"
(while true; do echo "$(date +%T) $(free -g | awk '/Mem/{print "used " $3 " GiB, available " $7 " GiB"}')"; sleep 10; done) > $R/host_mem.log &
MEM=$!
gpu_tests_18
P=$!
$B --model executorch:gemma4_31b --target rtx5090 --plugins $ALL --peak-breakdown --jobs 2 --out $R/et_on > $R/et_on.log 2>&1 &
P="$P $!"
torch_two_pass_18
P="$P $!"
sleep 60
et_two_pass_18 --backend-spec low_memory_mode=ON --jobs 3
wait $P $!
echo first done > $R/FIRST_DONE
slice_et_18
S=$!
$A demo --config gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload --json \
   > $R/demo_slice.json 2> $R/demo_slice.log
wait $S
kill $MEM
echo all done > $R/DONE
