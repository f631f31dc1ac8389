"""A typed facade over one session's hooks: the host never calls hooks with loose kwargs.

Hook implementations are called here one by one, in the session's plugin order (pluggy's
``tryfirst``/``trylast`` still apply), so that an exception raised by a plugin is always
reported with the plugin's and the hook's names and the original error chained.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import AotiHooksError, PluginError
from .manager import new_pluggy_manager

if TYPE_CHECKING:
    from .session import Session


class HookCaller:
    """Calls the hooks of the plugins ``selected`` for ``session``."""

    def __init__(self, session: "Session", selected: list[tuple[str, Any]]):
        from . import placement

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

    def _impls(self, hook: str):
        """Implementations in call order (pluggy's order: reversed registration list)."""
        return list(reversed(getattr(self._pm.hook, hook).get_hookimpls()))

    def _call(self, impl, hook: str, **kwargs: Any) -> Any:
        kwargs["session"] = self._session
        try:
            return impl.function(*[kwargs[name] for name in impl.argnames])
        except AotiHooksError:
            raise
        except Exception as error:
            raise PluginError(impl.plugin_name, hook, error) from error

    def implemented(self, hook: str) -> bool:
        return bool(getattr(self._pm.hook, hook).get_hookimpls())

    def move_program_to_device(self, program, device) -> Any | None:
        for impl in self._impls("move_program_to_device"):
            moved = self._call(impl, "move_program_to_device", program=program, device=device)
            if moved is not None:
                return moved
        return None

    def claim_tensors(self, program, candidates) -> list[tuple[str, dict[str, str]]]:
        """Every plugin's claims, in plugin order: ``[(plugin, {fqn: fill})]``."""
        answers = []
        for impl in self._impls("claim_tensors"):
            answer = self._call(impl, "claim_tensors", program=program, candidates=candidates)
            if answer is None:
                continue
            if not isinstance(answer, dict):
                raise PluginError(impl.plugin_name, "claim_tensors",
                                  TypeError(f"returned {type(answer).__name__}, not a dict of FQN to fill"))
            answers.append((impl.plugin_name, answer))
        return answers

    def keep_apart(self, name, tensor, other_name, other) -> bool:
        """True when some plugin's ``pre_constant_dedup`` returned False."""
        answers = [
            self._call(impl, "pre_constant_dedup", name=name, tensor=tensor, other_name=other_name, other=other)
            for impl in self._impls("pre_constant_dedup")
        ]
        return any(answer is False for answer in answers)

    def serialize_constant(self, name, tensor):
        for impl in self._impls("serialize_constant"):
            value = self._call(impl, "serialize_constant", name=name, tensor=tensor)
            if value is not None:
                return value
        return None

    def clone_lifted_buffer(self, tensor):
        for impl in self._impls("clone_lifted_buffer"):
            value = self._call(impl, "clone_lifted_buffer", tensor=tensor)
            if value is not None:
                return value
        return None

    def compile_contexts(self) -> list[AbstractContextManager]:
        contexts = []
        for impl in self._impls("compile_context"):
            context = self._call(impl, "compile_context")
            if context is not None:
                if not isinstance(context, AbstractContextManager) and not hasattr(context, "__enter__"):
                    raise PluginError(impl.plugin_name, "compile_context", TypeError(f"returned {context!r}, not a context manager"))
                contexts.append((impl.plugin_name, context))
        return contexts

    def autotune_configs(self, kernel, configs: list, target) -> list:
        for impl in self._impls("autotune_configs"):
            answer = self._call(impl, "autotune_configs", kernel=kernel, configs=configs, target=target)
            if answer is not None:
                configs = list(answer)
        return configs

    def compiled_configs(self, kernel_name: str, compiled: list, target) -> list:
        """The configs every plugin keeps, in order; each plugin sees the previous one's choice."""
        kept = [config for config, _ in compiled]
        for impl in self._impls("compiled_configs"):
            kept_ids = {id(config) for config in kept}
            offered = [(config, shared) for config, shared in compiled if id(config) in kept_ids]
            answer = self._call(impl, "compiled_configs", kernel_name=kernel_name, compiled=offered, target=target)
            if answer is not None:
                unknown = [config for config in answer if id(config) not in kept_ids]
                if unknown:
                    raise PluginError(impl.plugin_name, "compiled_configs",
                                      ValueError(f"returned configs it was not given: {unknown}"))
                kept = list(answer)
        return kept

    def aoti_options(self, user_options: dict[str, Any]) -> dict[str, Any]:
        """Merge every plugin's options under ``user_options``; conflicts are named."""
        asked: dict[str, tuple[str, Any]] = {}
        for impl in self._impls("aoti_options"):
            answer = self._call(impl, "aoti_options", options=dict(user_options))
            for key, value in (answer or {}).items():
                if key in asked and asked[key][1] != value:
                    raise AotiHooksError(
                        f"plugins {asked[key][0]!r} and {impl.plugin_name!r} ask for different values of "
                        f"Inductor option {key!r} ({asked[key][1]!r} vs {value!r}); use only one of them"
                    )
                asked[key] = (impl.plugin_name, value)
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

    def autotune_arguments(self, args: Sequence[Any], run: Callable[[], Any]) -> Any:
        """Run ``run()`` inside every plugin's ``autotune_arguments`` wrapper (outermost first)."""
        return self._wrap(self._impls("autotune_arguments"), 0, args, run)

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
