"""The two-pass AOT compile's first pass (``GraphLowering.compile_to_module`` with the cpp wrapper off in
AOT mode): it reads each constant its wrapper reads as ``autotune_example``'s answer (and writes
it, when written), and is one ``autotune_arguments`` run over the constants its extern kernels
(cuBLAS, SDPA, aten fallbacks) read that got no example, since those kernels run outside any
Triton autotune run.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

import torch

from .record import bind_lock, check_autotune_example, session_for
from .scheduled import extern_read_constants, written_constants

_first_pass_locks: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()


def _first_pass_lock(module: Any) -> threading.Lock:
    """One lock per compiled module: its globals are swapped while a first pass runs it."""
    with bind_lock:
        lock = _first_pass_locks.get(module)
        if lock is None:
            lock = _first_pass_locks[module] = threading.Lock()
        return lock


class FirstPassModule:
    """The first pass's compiled module (possibly a cached one, never left changed). Its ``call``
    runs the Python wrapper, which reads each constant as a global of the module:

    - each constant is read as the hooks' ``autotune_example`` answer (``written`` where a kernel
      writes it), its global swapped for the call and restored after: the pass only tunes Triton
      kernels, its outputs and writes are dropped, so values decide nothing here either (a placed
      weight then needs no fill at all, a written cache's writes land in the scratch block; stock
      reads the real weights, all of them on the device at once, and writes into clones of the
      caches). Measured on ExecuTorch's Gemma 4 at 128k: filling the full-attention caches for the
      pass instead cost 1 GiB, 27% of the weights;
    - the call is one ``autotune_arguments`` run over the constants extern kernels (cuBLAS, SDPA,
      aten fallbacks) read that keep their own values (no example, e.g. a written integer one):
      those kernels run outside any Triton autotune run.
    """

    def __init__(self, module: Any, session: Any, graph: Any):
        self._module, self._session = module, session
        self._constants = dict(graph.constants)
        self._written = written_constants(graph)
        self._extern_read = extern_read_constants(graph)

    def _examples(self) -> dict[str, torch.Tensor]:
        hooks = self._session.hooks
        if not hooks.implemented("autotune_example"):
            return {}
        # Only a global the wrapper's ``call`` reads by name is swapped; any other constant keeps
        # its own values (filled for the pass where an extern kernel reads it).
        read_by_call = set(getattr(getattr(self._module.call, "__code__", None), "co_names", ()))
        examples = {}
        for name, stock in self._constants.items():
            if not isinstance(stock, torch.Tensor) or name not in vars(self._module) or name not in read_by_call:
                continue
            given = hooks.autotune_example(name, stock, name in self._written)
            if given is None or given is stock:
                continue
            check_autotune_example(name, stock, given)
            examples[name] = given
        return examples

    def call(self, *args, **kwargs):
        """One first pass on the examples; if it raises there (a shape or an index computed from a
        weight's values, say), once more on the constants' own values, as stock runs it (the
        report's ``first_pass.rerun_with_values`` says what it raised); that run's error is stock's."""
        inputs = [list(arg) if isinstance(arg, list) else arg for arg in args]  # the wrapper clears its list
        with _first_pass_lock(self._module):
            examples = self._examples()
            if not examples:
                return self._run({}, args, kwargs)
            # The hooks' own counters (placement's ``autotune_stand_ins``, ...) count these answers
            # too; these two say how many of them, and how many bytes, were this pass's.
            self._session.report.add("first_pass", "examples", len(examples))
            self._session.report.add("first_pass", "example_bytes",
                                     sum(self._constants[name].numel() * self._constants[name].element_size()
                                         for name in examples))
            try:
                return self._run(examples, args, kwargs)
            except Exception as error:  # noqa: BLE001 - run again as stock would; its error is raised
                message = (str(error).strip().splitlines() or [""])[0][:200]
                self._session.report.set("first_pass", "rerun_with_values", f"{type(error).__name__}: {message}")
            finally:
                examples.clear()  # the stand-ins (and their block) go before anything else runs
            return self._run({}, inputs, kwargs)

    def _run(self, examples: dict[str, torch.Tensor], args, kwargs):
        """The wrapper's ``call`` with ``examples`` as its globals, in one ``autotune_arguments`` run
        over the extern-read constants that keep their values; the globals restored after."""
        module, hooks = self._module, self._session.hooks
        held = [self._constants[name] for name in self._extern_read if name not in examples]
        saved = {name: vars(module)[name] for name in examples}
        try:
            for name, example in examples.items():
                setattr(module, name, example)
            run = lambda: module.call(*args, **kwargs)  # noqa: E731
            if held and hooks.implemented("autotune_arguments"):
                return hooks.autotune_arguments(held, run)
            return run()
        finally:
            for name, value in saved.items():
                setattr(module, name, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _patched_compile_to_module(original: Callable) -> Callable:
    def compile_to_module(self):
        module = original(self)
        if not getattr(self, "aot_mode", False) or getattr(self, "cpp_wrapper", True):
            return module  # not the two-pass compile's first pass
        session = session_for(self)
        if session is None or not (session.hooks.implemented("autotune_arguments")
                                   or session.hooks.implemented("autotune_example")):
            return module
        return FirstPassModule(module, session, self)

    return compile_to_module


MAKERS = {"torch._inductor.graph.GraphLowering.compile_to_module": _patched_compile_to_module}
