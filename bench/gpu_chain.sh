# Sourced by the GPU measurement chains (`*_18.sh`): the results folder (their first argument)
# and the commands they share. Three compiles at once get 3 compile threads each.
set -u
R=${1:?results folder}
mkdir -p $R
export TORCHINDUCTOR_COMPILE_THREADS=3
A="python3 -m aoti_hooks.cli"
B="$A bench"
ALL=kv_elide,chunked_dequant,sdpa_configs,const_offload
