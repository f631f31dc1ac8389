# Issue 18's peak traces and issue 19's CudaBackend lowering, side by side on one GPU machine.
# Run after `source bench/gpu_setup.sh` (and LD_PRELOAD, see bench/README.md); results under $1.
# Each bench is its own set of processes with cold caches; two ExecuTorch benches compile at once,
# then the slice benches. Compile times are therefore not comparable; peaks are each run's own.
set -u
R=${1:?results folder}
mkdir -p $R
export TORCHINDUCTOR_COMPILE_THREADS=3
B="python3 -m aoti_hooks bench"
ALL=kv_elide,chunked_dequant,sdpa_configs,const_offload
(
  $B --model executorch:gemma4_31b --target rtx5090 --plugins $ALL --peak-breakdown --jobs 2 \
     --out $R/et_on > $R/et_on.log 2>&1
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload --peak-breakdown --jobs 2 \
     --out $R/torch_on > $R/torch_on.log 2>&1
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide --peak-breakdown --jobs 2 \
     --inductor triton.autotune_at_compile_time=False --out $R/torch_off > $R/torch_off.log 2>&1
) &
(
  $B --model executorch:gemma4_31b --target rtx5090 --common-spec autotune_at_compile_time=OFF \
     --backend-spec low_memory_mode=ON --plugins $ALL --peak-breakdown --jobs 3 \
     --out $R/et_off > $R/et_off.log 2>&1
  $B --model demo:gemma4-31b-slice --layers 1 --lm-head int4 --backend executorch --common-spec autotune_at_compile_time=OFF \
     --plugins chunked_dequant --option chunked_dequant.max_transient=256MiB --jobs 2 --out $R/tile_rows > $R/tile_rows.log 2>&1
  $B --model demo:gemma4-31b-slice --layers 1 --lm-head int4 --backend executorch --common-spec autotune_at_compile_time=OFF \
     --plugins chunked_dequant --option chunked_dequant.mode=tile --jobs 2 --out $R/tile_tile > $R/tile_tile.log 2>&1
) &
wait
echo all done > $R/DONE
