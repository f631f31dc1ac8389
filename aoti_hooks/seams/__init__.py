"""The only code that touches private torch, Triton and ExecuTorch symbols (tests/house/test_seam_rule.py enforces it).

- `inductor`: patches ``torch._inductor`` (dedup, constant values, unlift clones, autotune runs,
  traced Triton calls, compiled configs) while a session is active;
- `executorch`: wraps ExecuTorch's AOTI backends' ``preprocess`` and its CUDA weight collector,
  and reads ExecuTorch's kernels and ``.pte`` reader;
- `export`: copies ``ExportedProgram`` state, reads what a program's graph writes and calls;
- `ops`: op schemas and kernel overrides in the dispatcher;
- `triton`: Triton autotuner objects (configs, forced configs, compiled shared memory);
- `shared_memory`: a session's target shared memory as Triton's limit for the kernels its compile loads;
- `allocator`: the CUDA caching allocator's history (bench and demo breakdowns);
- `tensors`: a CUDA tensor over a storage too small for its layout (placement's views, built without growing);
- `aoti_runner`: torch's AOTI runner, to run one ExecuTorch delegate with the constants its `.ptd` holds;
- `patching`: the one lifecycle of every process-wide change: refcounted, restoring sets held
  by sessions (or, for the ExecuTorch integration, from ``install()`` to ``uninstall()``).

Every module that relies on a private symbol has a ``check()`` that ``aoti-hooks doctor`` runs;
patches check their symbols before installing anything and are removed when their last holder lets go.
"""

# The torch releases every seam's symbols were checked against, and where: ``aoti-hooks doctor``
# names them. torch 2.12 has not been checked. 2.15.0 ran the same tests as 2.14.1 once, on the CPU,
# with `make test-torch-next TORCH_NEXT=2.15.0`; CI does not repeat that (its pip stops at 2.14.1).
CHECKED_TORCH = {"2.11.0": "the GPU suites and tests (H200, CUDA 13)", "2.13.0": "CI: the whole suite",
                 "2.14.1": "CI: the seams and the real compiles (make test-torch-next)",
                 "2.15.0": "once, on the CPU: the seams and the real compiles (make test-torch-next TORCH_NEXT=2.15.0)"}
