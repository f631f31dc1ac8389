#!/bin/bash
# Downloads, into DIR (default .whl_exporters), what an offline GPU machine with Python 3.12 and
# transformers needs to run optimum-executorch's cuda recipe: optimum-executorch imports every recipe
# it has (coremltools for CoreML's, pandas through ExecuTorch's devtools) before it runs any.
# transformers' ExecutorchExporter needs nothing more than transformers (5.17 or later) and ExecuTorch.
# bench/gpu_setup.sh installs DIR with the rest.
set -e
dir=${1:-.whl_exporters}
mkdir -p "$dir"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" \
  optimum-executorch==1.1.0 optimum==2.0.0 accelerate pytorch-tokenizers pandas tzdata coremltools cattrs attrs \
  pyaml protobuf
ls "$dir"
