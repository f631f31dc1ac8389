"""A typed facade over one session's hooks; each method is named after its hook.

How answers combine is read from the contract (``hookspecs``): pluggy's ``firstresult`` and
``wrapper`` kinds from each spec, chaining from `hookspecs.CHAINED`. Implementations are
called one by one, in the session's plugin order (pluggy's ``tryfirst``/``trylast`` still
apply), so that each gets its own ``options`` and ``state`` and an exception raised by a
plugin is always reported with the plugin's and the hook's names, the original error chained.

``AOTI_HOOKS_TRACE=1`` logs every hook call (plugin, arguments in brief, answer) to the
``aoti_hooks.trace`` logger on stderr: hooks fire deep inside torch, where a debugger rarely helps.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import hookspecs, placement
from .errors import AotiHooksError, PluginError
from .registry import new_pluggy_manager

if TYPE_CHECKING:
    from ._session import Session

TRACE_ENV = "AOTI_HOOKS_TRACE"
_trace = logging.getLogger("aoti_hooks.trace")


def tracing() -> bool:
    return os.environ.get(TRACE_ENV, "").strip() not in ("", "0")


def brief(value: Any) -> str:
    """A short description of a hook argument or answer: shapes, not values."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__name__}{tuple(shape)} {value.dtype} {getattr(value, 'device', '')}".rstrip()
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{len(value)}]"
    if isinstance(value, dict):
        return f"dict[{len(value)}]"
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


class HookCaller:
    """Calls the hooks of the plugins ``selected`` (and the core's placement) for ``session``."""

    def __init__(self, session: "Session", selected: list[tuple[str, Any]]):
        self._session = session
        self._pm = new_pluggy_manager()
        # pluggy calls the last registered first: register backwards to call in named order.
        # The core's placement is a plugin like any other (its tryfirst/trylast marks place it).
        for name, plugin in [*reversed(selected), (placement.NAME, placement)]:
            try:
                self._pm.register(plugin, name=name)
                self._pm.check_pending()
            except Exception as error:  # pluggy's PluginValidationError and friends
                raise AotiHooksError(f"plugin {name!r} does not fit the aoti_hooks contract: {error}") from error
        for impl in self._pm.hook.autotune_arguments.get_hookimpls():
            if not impl.wrapper:
                raise AotiHooksError(
                    f"plugin {impl.plugin_name!r} implements autotune_arguments without "
                    f"@hookimpl(wrapper=True); make it a wrapper that yields once"
                )

    # --- calling, by the kind the contract gives each hook ------------------------------------

    def _impls(self, hook: str):
        """Implementations in call order (pluggy's order: reversed registration list)."""
        return list(reversed(getattr(self._pm.hook, hook).get_hookimpls()))

    def _first_result(self, hook: str) -> bool:
        return bool(getattr(self._pm.hook, hook).spec.opts.get("firstresult"))

    def _call(self, impl, hook: str, **kwargs: Any) -> Any:
        plugin = impl.plugin_name
        kwargs.update(session=self._session, options=self._session.options.get(plugin, {}),
                      state=self._session.state(plugin))
        try:
            answer = impl.function(*[kwargs[name] for name in impl.argnames])
        except AotiHooksError:
            raise
        except Exception as error:
            raise PluginError(plugin, hook, error) from error
        if tracing():
            shown = ", ".join(f"{key}={brief(value)}" for key, value in kwargs.items()
                              if key in impl.argnames and key not in ("session", "options", "state"))
            _trace.warning("%s.%s(%s) -> %s", plugin, hook, shown, brief(answer))
        return answer

    def _answers(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """``[(plugin, answer)]`` of every non-None answer, in order; stops at the first for a firstresult hook."""
        answers = []
        for impl in self._impls(hook):
            answer = self._call(impl, hook, **kwargs)
            if answer is not None:
                answers.append((impl.plugin_name, answer))
                if self._first_result(hook):
                    break
        return answers

    def _first(self, hook: str, **kwargs: Any) -> Any:
        answers = self._answers(hook, **kwargs)
        return answers[0][1] if answers else None

    def _chain(self, hook: str, check: Callable[[str, Any, Any], Any] | None = None, **kwargs: Any) -> Any:
        """Each answer replaces the chained argument (`hookspecs.CHAINED`) for the next plugin."""
        key = hookspecs.CHAINED[hook]
        for impl in self._impls(hook):
            answer = self._call(impl, hook, **kwargs)
            if answer is not None:
                kwargs[key] = check(impl.plugin_name, kwargs[key], answer) if check else list(answer)
        return kwargs[key]

    def implemented(self, hook: str) -> bool:
        return bool(getattr(self._pm.hook, hook).get_hookimpls())

    def generated_code_key(self) -> str | None:
        """What Inductor's caches must also key on in this session, or None when nothing here
        changes generated code (`hookspecs.CHANGES_GENERATED_CODE`): the plugins that do, their
        resolved options, and the target."""
        plugins = sorted({impl.plugin_name for hook in hookspecs.CHANGES_GENERATED_CODE
                          for impl in getattr(self._pm.hook, hook).get_hookimpls()})
        if not plugins:
            return None
        session = self._session
        options = ";".join(f"{name}={sorted(session.options.get(name, {}).items())!r}" for name in plugins)
        target = session.target
        return f"aoti_hooks[{options}] target={target.name},smem={target.smem},mem={target.mem}"

    # --- the hooks, in lifecycle order -----------------------------------------------------------

    def move_program_to_device(self, program, device) -> Any | None:
        return self._first("move_program_to_device", program=program, device=device)

    def claim_tensors(self, program, candidates) -> list[tuple[str, dict[str, str]]]:
        """Every plugin's claims, in plugin order: ``[(plugin, {fqn: fill})]``."""
        answers = self._answers("claim_tensors", program=program, candidates=candidates)
        for plugin, answer in answers:
            if not isinstance(answer, dict):
                raise PluginError(plugin, "claim_tensors",
                                  TypeError(f"returned {type(answer).__name__}, not a dict of FQN to fill"))
        return answers

    def aoti_options(self, user_options: dict[str, Any]) -> dict[str, Any]:
        """Merge every plugin's options under ``user_options``; conflicts are named."""
        asked: dict[str, tuple[str, Any]] = {}
        for plugin, answer in self._answers("aoti_options", inductor_options=dict(user_options)):
            for key, value in answer.items():
                if key in asked and asked[key][1] != value:
                    raise AotiHooksError(
                        f"plugins {asked[key][0]!r} and {plugin!r} ask for different values of "
                        f"Inductor option {key!r} ({asked[key][1]!r} vs {value!r}); use only one of them"
                    )
                asked[key] = (plugin, value)
        merged = {key: value for key, (_, value) in asked.items()}
        for key, value in user_options.items():
            if key in asked and asked[key][1] != value:
                warnings.warn(
                    f"Inductor option {key!r}={value!r} set by you overrides {asked[key][1]!r} "
                    f"asked for by plugin {asked[key][0]!r}",
                    stacklevel=3,
                )
            merged[key] = value
        return merged

    def compile_context(self) -> list[tuple[str, AbstractContextManager]]:
        """``[(plugin, context manager)]`` to enter around the compile, in plugin order."""
        answers = self._answers("compile_context")
        for plugin, context in answers:
            if not hasattr(context, "__enter__") or not hasattr(context, "__exit__"):
                raise PluginError(plugin, "compile_context", TypeError(f"returned {context!r}, not a context manager"))
        return answers

    def autotune_configs(self, kernel, configs: list, target) -> list:
        return self._chain("autotune_configs", kernel=kernel, configs=list(configs), target=target)

    def clone_lifted_buffer(self, tensor):
        return self._first("clone_lifted_buffer", tensor=tensor)

    def clone_autotune_argument(self, tensor):
        return self._first("clone_autotune_argument", tensor=tensor)

    def choice_example(self, size, stride, dtype, device, storage_elements):
        return self._first("choice_example", size=size, stride=stride, dtype=dtype, device=device,
                           storage_elements=storage_elements)

    def pre_constant_dedup(self, name, tensor, other_name, other) -> bool | None:
        """``False`` when some plugin keeps the two constants apart, else ``None``."""
        answers = self._answers("pre_constant_dedup", name=name, tensor=tensor, other_name=other_name, other=other)
        return False if any(answer is False for _, answer in answers) else None

    def compiled_configs(self, kernel_name: str, compiled: list, target) -> list:
        """The configs every plugin keeps, in order; each plugin sees the previous one's choice."""
        shared = {id(config): size for config, size in compiled}

        def subset(plugin, offered, answer):
            kept_ids = {id(config) for config, _ in offered}
            unknown = [config for config in answer if id(config) not in kept_ids]
            if unknown:
                raise PluginError(plugin, "compiled_configs", ValueError(f"returned configs it was not given: {unknown}"))
            return [(config, shared[id(config)]) for config in answer]

        kept = self._chain("compiled_configs", subset, kernel_name=kernel_name, compiled=list(compiled), target=target)
        return [config for config, _ in kept]

    def autotune_example(self, name: str, tensor, written: bool):
        return self._first("autotune_example", name=name, tensor=tensor, written=written)

    def autotune_arguments(self, args: Sequence[Any], run: Callable[[], Any]) -> Any:
        """Run ``run()`` inside every plugin's ``autotune_arguments`` wrapper (outermost first)."""
        return self._wrap(self._impls("autotune_arguments"), 0, args, run)

    def serialize_constant(self, name, tensor):
        return self._first("serialize_constant", name=name, tensor=tensor)

    def _wrap(self, impls, index: int, args, run):
        if index == len(impls):
            return run()
        impl = impls[index]
        hook = "autotune_arguments"
        gen = self._call(impl, hook, args=args)
        try:
            next(gen)
        except StopIteration:
            raise PluginError(impl.plugin_name, hook, RuntimeError("the wrapper did not yield")) from None
        except Exception as error:
            raise PluginError(impl.plugin_name, hook, error) from error
        try:
            result = self._wrap(impls, index + 1, args, run)
        except BaseException as inner:
            try:
                gen.throw(inner)
            except StopIteration as stop:
                return stop.value
            except BaseException as error:
                if error is inner or isinstance(error, AotiHooksError):
                    raise
                raise PluginError(impl.plugin_name, hook, error) from error
            raise PluginError(impl.plugin_name, hook, RuntimeError("the wrapper yielded twice"))
        try:
            gen.send(result)
        except StopIteration as stop:
            return stop.value
        except Exception as error:
            raise PluginError(impl.plugin_name, hook, error) from error
        raise PluginError(impl.plugin_name, hook, RuntimeError("the wrapper yielded twice"))
