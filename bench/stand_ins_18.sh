# Issue 18: compile-time autotune reads stand-ins (one small block mapped over a constant's whole
# address range) for placed and written constants, side by side on one GPU machine. Run after
# `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md); results under $1.
# The GPU tests first; then the torch slice and ExecuTorch's model (1 period) at once; then
# ExecuTorch's model at 2 periods alone (three ExecuTorch benches at once filled the 64 GiB disk).
source "$(dirname "$0")/gpu_chain.sh" "$@"
if [ "${SKIP_TESTS:-}" != 1 ]; then
  PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q -p no:cacheprovider tests/gpu > $R/pytest_gpu.log 2>&1; echo "rc=$?" >> $R/pytest_gpu.log
fi
(  # the torch backend: the Gemma 4 slice, 1 layer at 8k (the output check, then the peaks)
  $A demo --config gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload --json \
     > $R/demo_slice.json 2> $R/demo_slice.log
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide --plugins kv_elide,const_offload \
     --peak-breakdown --jobs 3 --out $R/torch_on > $R/torch_on.log 2>&1
) &
(  # ExecuTorch's own Gemma 4 31B, 1 period at 128k, int4, through CudaBackend (its outputs checked on the GPU)
  $B --model executorch:gemma4_31b --target rtx5090 --plugins kv_elide,chunked_dequant --plugins $ALL \
     --peak-breakdown --jobs 3 --out $R/et_on > $R/et_on.log 2>&1
) &
wait
echo first done > $R/FIRST_DONE
# a second size: 2 periods (12 layers), small constants offloaded too
$B --model executorch:gemma4_31b --periods 2 --target rtx5090 --plugins $ALL --option const_offload.min_bytes=1MiB \
   --peak-breakdown --jobs 2 --out $R/et_p2 > $R/et_p2.log 2>&1
echo all done > $R/DONE
