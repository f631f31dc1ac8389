"""Where does ExecuTorch's int4_plain_mm run eagerly during a CudaBackend lowering? (diagnostic)

    source bench/gpu_setup.sh; python3 bench/probe_int4_eager_calls.py [OFF|ON]

Lowers the slice's first layer with an int4 lm_head (chunked_dequant on) and prints, for each
call of ExecuTorch's eager int4 dequant-matmul, the thread, the torch-function mode stack
depth, the argument types and the calling frames. Patches ExecuTorch's private
``int4_dispatch._dequant_matmul`` for the run: a diagnostic, not library code.
"""
import sys
import threading
import traceback

import torch

from aoti_hooks.tools.demo import worker
from executorch.backends.cuda.quantize_op_dispatch import int4_dispatch

original = int4_dispatch._dequant_matmul


def logged(x, qdata, *rest):
    stack = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_stack()[-14:-1]]
    print("INT4 EAGER CALL", threading.current_thread().name, "tf-modes", torch._C._len_torch_function_stack(),
          "rows", qdata.shape[0], [type(t).__name__ for t in (x, qdata)], *stack, sep="\n  ", flush=True)
    return original(x, qdata, *rest)


int4_dispatch._dequant_matmul = logged
spec = {"config": "gemma4-31b-slice", "layers": 1, "lm_head": "int4", "backend": "executorch",
        "plugins": ["chunked_dequant"], "options": {"chunked_dequant": {"max_transient": "256MiB"}},
        "backend_specs": {"autotune_at_compile_time": sys.argv[1] if len(sys.argv) > 1 else "OFF"},
        "variant": "probe", "package": "/tmp/probe_int4/run.pt2"}
result = worker.compile_one(spec)
print("report", result["report"], "peak", result.get("peak_allocated"))
