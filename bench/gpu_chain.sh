# Sourced by the GPU measurement chains (`*_18.sh`): the results folder (their first argument)
# and the commands they share. Three compiles at once get 3 compile threads each.
set -u
R=${1:?results folder}
mkdir -p $R
export TORCHINDUCTOR_COMPILE_THREADS=3
A="python3 -m aoti_hooks"
B="$A bench"
ALL=kv_elide,chunked_dequant,sdpa_configs,const_offload

# The first phase of peaks_18.sh and final_18.sh, at once: the GPU tests; the torch slice (its output
# check, then stock and kv_elide + const_offload one after the other, so their compile times compare);
# ExecuTorch's Gemma 4 31B at 1 period: stock, low_memory_mode, kv_elide + chunked_dequant, all four.
first_phase_18() {
  gpu_tests_18
  (
    $A demo --config gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload --json \
       > $R/demo_slice.json 2> $R/demo_slice.log
    $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload \
       --peak-breakdown --jobs 1 --out $R/torch_on > $R/torch_on.log 2>&1
  ) &
  $B --model executorch:gemma4_31b --target rtx5090 --backend-spec low_memory_mode=ON \
     --plugins kv_elide,chunked_dequant --plugins $ALL --peak-breakdown --jobs 4 --out $R/et_on > $R/et_on.log 2>&1 &
  wait
  echo first done > $R/FIRST_DONE
}

# The GPU tests (tests/gpu), each test's result named in the log, in the background.
gpu_tests_18() {
  PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -v -rA -p no:cacheprovider tests/gpu > $R/pytest_gpu.log 2>&1 &
}

# ExecuTorch's Gemma 4 at 1 period in the two-pass mode (CudaBackend's autotune_at_compile_time=OFF:
# stock, all four, and the runs and --jobs its arguments add, with the output checks), in the background.
et_two_pass_18() {
  $B --model executorch:gemma4_31b --target rtx5090 --common-spec autotune_at_compile_time=OFF \
     "$@" --plugins $ALL --peak-breakdown --out $R/et_two_pass > $R/et_two_pass.log 2>&1 &
}

# The slice through CudaBackend (stock, all four), in the background: max-autotune's fusion benchmark.
slice_et_18() {
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --backend executorch --plugins $ALL \
     --peak-breakdown --jobs 2 --out $R/slice_et > $R/slice_et.log 2>&1 &
}

# The slice in the two-pass mode (stock, then kv_elide + const_offload), in the background.
torch_two_pass_18() {
  $B --model demo:gemma4-31b-slice --layers 1 --ctx 8192 --plugins kv_elide,const_offload \
     --inductor triton.autotune_at_compile_time=False --peak-breakdown --jobs 1 --out $R/torch_two_pass > $R/torch_two_pass.log 2>&1 &
}
