# Issue 18: compile-time autotune reads constants themselves (hook autotune_example), side by side
# on one GPU machine. Run after `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md);
# results under $1. Three chains compile at once; each bench's runs are their own processes with
# cold caches, so peaks are each run's own and compile times are not comparable.
source "$(dirname "$0")/gpu_chain.sh" "$@"
(  # ExecuTorch's own Gemma 4 31B, 1 period at 128k, int4, through CudaBackend (its outputs checked on the GPU)
  $B --model executorch:gemma4_31b --target rtx5090 --plugins kv_elide,chunked_dequant --plugins $ALL \
     --peak-breakdown --jobs 3 --out $R/et_on > $R/et_on.log 2>&1
) &
(  # the torch backend: the Gemma 4 slice, 1 layer at 8k; the GPU output check; the two-pass fix
  $A demo --config gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload --json \
     > $R/demo_slice.json 2> $R/demo_slice.log
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide --plugins kv_elide,const_offload \
     --peak-breakdown --jobs 3 --out $R/torch_on > $R/torch_on.log 2>&1
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide --jobs 2 \
     --inductor triton.autotune_at_compile_time=False --out $R/torch_off > $R/torch_off.log 2>&1
) &
(  # a second size: 2 periods (12 layers) of ExecuTorch's model, small constants offloaded too
  $B --model executorch:gemma4_31b --periods 2 --target rtx5090 --plugins $ALL --option const_offload.min_bytes=1MiB \
     --jobs 2 --out $R/et_p2 > $R/et_p2.log 2>&1
) &
wait
echo all done > $R/DONE
