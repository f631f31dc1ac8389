"""The typed facade over pluggy: one method per hook, named after it, in lifecycle order.

pluggy's own call loop runs every hook: its order (the named plugin order, ``tryfirst`` and
``trylast``), *first result*, *all results* and *wrapper* (`hookspecs`). A plugin reads its
options and state from the session (``session.options_for(name)``, ``session.state(name)``), as
datasette's plugins read ``datasette.plugin_config(name)``. This module adds only what pluggy has
no place for:

- the plugin's name: on a failure (`PluginError`, the original error chained), and on each answer
  of an all-results hook (`Answer`), for the report and for conflicts;
- the wall time spent in each plugin's hook functions (`TIME`), for the report: where a compile
  with plugins spends its extra time. A wrapper's time leaves out what it wraps;
- chaining (`hookspecs.CHAINED`): each answer is the next plugin's input, in plugin order.

Both are a thin wrapper around each hook function; pluggy reads the arguments to pass from the
function it wraps (``__wrapped__``), so the wrapper is called exactly as the plugin's function is.

The command-line hooks (`hookspecs.CLI_HOOKS`) run through the same machinery over every
installed plugin (`installed_hooks`); there a plugin that raises is named in one warning and
skipped, so it costs only its own command or check.

``AOTI_HOOKS_TRACE=1`` logs every hook call (the plugins that answer it, arguments in brief, the
answer) to the ``aoti_hooks.trace`` logger on stderr, through pluggy's hook-call monitoring: hooks
fire deep inside torch, where a debugger rarely helps.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import types
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import pluggy

from . import hookspecs
from .errors import AotiHooksError, AotiHooksWarning, PluginError
from .types import SessionView

TRACE_ENV = "AOTI_HOOKS_TRACE"
_trace = logging.getLogger("aoti_hooks.trace")
TIME = "time"  # the report's name for the seconds spent in each plugin's hooks: ``{plugin}.{hook}_s``


def tracing() -> bool:
    return os.environ.get(TRACE_ENV, "").strip() not in ("", "0")


def brief(value: Any) -> str:
    """A short description of a hook argument or answer: shapes, not values."""
    if isinstance(value, Answer):
        return f"{value.plugin}: {brief(value.value)}"
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__name__}{tuple(shape)} {value.dtype} {getattr(value, 'device', '')}".rstrip()
    if isinstance(value, list) and all(isinstance(item, Answer) for item in value):
        return "[" + ", ".join(brief(item) for item in value) + "]"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{len(value)}]"
    if isinstance(value, dict):
        return f"dict[{len(value)}]"
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Answer:
    """One plugin's answer to an all-results hook, with the plugin's name."""

    plugin: str
    value: Any


def new_pluggy_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _trace_call(hook: str, kwargs: dict[str, Any], plugins: str, answer: str) -> None:
    shown = ", ".join(f"{key}={brief(value)}" for key, value in kwargs.items() if key != "session")
    _trace.warning("%s(%s) [%s] -> %s", hook, shown, plugins, answer)


def trace_calls(pm: pluggy.PluginManager) -> None:
    """Log each call of ``pm``'s hooks, the plugins that answered and the answer (``AOTI_HOOKS_TRACE``)."""
    def after(outcome, hook: str, impls, kwargs: dict[str, Any]) -> None:
        answer = f"raised {type(outcome.exception).__name__}" if outcome.exception else brief(outcome.get_result())
        _trace_call(hook, kwargs, ", ".join(impl.plugin_name for impl in reversed(impls)), answer)

    pm.add_hookcall_monitoring(lambda *_: None, after)


def _is_all_results(pm: pluggy.PluginManager, hook: str) -> bool:
    caller = getattr(pm.hook, hook, None)
    spec = getattr(caller, "spec", None)
    return spec is not None and not spec.opts.get("firstresult") and hook not in hookspecs.CHAINED


def _failed(plugin: str, hook: str, error: BaseException, raising: bool) -> None:
    """A plugin's exception: raised as a `PluginError` in a session; a warning and no answer on the command line."""
    if isinstance(error, AotiHooksError) and raising:
        raise error
    wrapped = PluginError(plugin, hook, error)
    if raising:
        raise wrapped from error
    warnings.warn(str(wrapped), AotiHooksWarning, stacklevel=4)


def _bind_function(plugin: str, hook: str, function: Callable, raising: bool, all_results: bool, wrapper: bool,
                   spent: Callable[[str, str, float], None] | None = None) -> Callable:
    """``function`` as pluggy calls it: its failures named, an all-results answer tagged with
    ``plugin``, its wall time given to ``spent``."""
    def timed(step: Callable[[], Any]) -> Any:
        if spent is None:
            return step()
        start = time.perf_counter()
        try:
            return step()
        finally:
            spent(plugin, hook, time.perf_counter() - start)

    if wrapper:
        def bound(*args):
            try:
                gen = function(*args)
                timed(lambda: next(gen))
            except StopIteration:
                _failed(plugin, hook, RuntimeError("the wrapper did not yield"), raising)
                return (yield)
            except Exception as error:
                _failed(plugin, hook, error, raising)
                return (yield)
            try:
                result = yield
            except BaseException as inner:
                try:
                    timed(lambda thrown=inner: gen.throw(thrown))
                except StopIteration as stop:
                    return stop.value
                except BaseException as error:
                    if error is inner or isinstance(error, AotiHooksError):
                        raise
                    _failed(plugin, hook, error, True)
                _failed(plugin, hook, RuntimeError("the wrapper yielded twice"), True)
            try:
                timed(lambda: gen.send(result))
            except StopIteration as stop:
                return stop.value
            except Exception as error:
                _failed(plugin, hook, error, True)
            _failed(plugin, hook, RuntimeError("the wrapper yielded twice"), True)
    else:
        def bound(*args):
            try:
                answer = timed(lambda: function(*args))
            except Exception as error:
                _failed(plugin, hook, error, raising)
                return None
            return Answer(plugin, answer) if all_results and answer is not None else answer

    bound.__wrapped__ = function  # pluggy passes the arguments ``function`` names, in its order
    bound.__name__ = getattr(function, "__name__", hook)
    return bound


def bound(name: str, plugin: Any, pm: pluggy.PluginManager, raising: bool = True,
          spent: Callable[[str, str, float], None] | None = None) -> Any:
    """A copy of ``plugin`` holding its hook implementations, each named on failure and timed."""
    copy = types.SimpleNamespace()
    for attribute in dir(plugin):
        function = getattr(plugin, attribute, None)
        opts = getattr(function, f"{hookspecs.PROJECT}_impl", None) if inspect.isroutine(function) else None
        if not isinstance(opts, dict):
            continue
        hook = opts.get("specname") or attribute
        wrapper = bool(opts.get("wrapper") or opts.get("hookwrapper"))
        if hook in hookspecs.WRAPPERS and not wrapper:
            raise AotiHooksError(f"plugin {name!r} implements {hook} without @hookimpl(wrapper=True); "
                                 f"make it a wrapper that yields once")
        made = _bind_function(name, hook, function, raising, _is_all_results(pm, hook), wrapper, spent)
        setattr(made, f"{hookspecs.PROJECT}_impl", dict(opts))
        setattr(copy, attribute, made)
    return copy


def _not_in_the_contract(error: Exception) -> str:
    """pluggy's validation error, with what to do when a hook asks for the arguments hooks no longer get."""
    text = str(error)
    if "'options'" in text or "'state'" in text:
        text += ("; hooks take no `options` or `state` argument: read them with session.options_for(name) "
                 "and session.state(name)")
    return text


def register(pm: pluggy.PluginManager, name: str, plugin: Any, raising: bool = True,
             spent: Callable[[str, str, float], None] | None = None) -> None:
    """Register ``plugin`` under ``name``; a plugin that does not fit the contract is one sentence."""
    copy = bound(name, plugin, pm, raising, spent)
    try:
        pm.register(copy, name=name)
        pm.check_pending()
    except Exception as error:  # pluggy's PluginValidationError and friends
        if pm.has_plugin(name):
            pm.unregister(name=name)
        raise AotiHooksError(f"plugin {name!r} does not fit the aoti_hooks contract: {_not_in_the_contract(error)}") \
            from error


def _answers(results: Iterable[Any]) -> list[tuple[str, Any]]:
    return [(answer.plugin, answer.value) for answer in results]


class Hooks:
    """The hooks of the plugins ``selected`` and the built-in ones, called for ``session``."""

    def __init__(self, session: SessionView, selected: Sequence[tuple[str, Any]], built_in: Sequence[tuple[str, Any]]):
        self._session = session
        self._pm = new_pluggy_manager()
        # pluggy calls the last registered first: register backwards to call in named order. A
        # built-in plugin is a plugin like any other (its tryfirst/trylast marks place it).
        for name, plugin in [*reversed(selected), *built_in]:
            register(self._pm, name, plugin, spent=self._spent)
        self._tracing = tracing()  # decided once per session, for pluggy's calls and the chained ones alike
        if self._tracing:
            trace_calls(self._pm)

    def _spent(self, plugin: str, hook: str, seconds: float) -> None:
        self._session.report.add(TIME, f"{plugin}.{hook}_s", seconds)

    def _call(self, hook: str, **kwargs: Any) -> Any:
        return getattr(self._pm.hook, hook)(session=self._session, **kwargs)

    def _chain(self, hook: str, check: Callable[[str, Any, Any], Any] | None = None, **kwargs: Any) -> Any:
        """Each answer replaces the chained argument (`hookspecs.CHAINED`) for the next plugin."""
        key = hookspecs.CHAINED[hook]
        kwargs.update(session=self._session)
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            answer = impl.function(*[kwargs[name] for name in impl.argnames])
            if self._tracing:
                _trace_call(hook, kwargs, impl.plugin_name, brief(answer))
            if answer is not None:
                kwargs[key] = check(impl.plugin_name, kwargs[key], answer) if check else list(answer)
        return kwargs[key]

    def implemented(self, hook: str) -> bool:
        return bool(getattr(self._pm.hook, hook).get_hookimpls())

    def implementers(self, hook: str) -> list[str]:
        """The plugins that implement ``hook``, in the order they are called."""
        return [impl.plugin_name for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls())]

    # --- the hooks, in lifecycle order -----------------------------------------------------------

    def move_program_to_device(self, program, device) -> Any | None:
        return self._call("move_program_to_device", program=program, device=device)

    def claim_tensors(self, program, candidates) -> list[tuple[str, dict[str, str]]]:
        """Every plugin's claims, in plugin order: ``[(plugin, {fqn: fill})]``."""
        answers = _answers(self._call("claim_tensors", program=program, candidates=candidates))
        for plugin, answer in answers:
            if not isinstance(answer, dict):
                raise PluginError(plugin, "claim_tensors",
                                  TypeError(f"returned {type(answer).__name__}, not a dict of FQN to fill"))
        return answers

    def aoti_options(self, user_options: dict[str, Any]) -> dict[str, Any]:
        """Merge every plugin's options under ``user_options``; conflicts are named."""
        asked: dict[str, tuple[str, Any]] = {}
        for plugin, answer in _answers(self._call("aoti_options", inductor_options=dict(user_options))):
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
        answers = _answers(self._call("compile_context"))
        for plugin, context in answers:
            if not hasattr(context, "__enter__") or not hasattr(context, "__exit__"):
                raise PluginError(plugin, "compile_context", TypeError(f"returned {context!r}, not a context manager"))
        return answers

    def autotune_configs(self, kernel, configs: list, target) -> list:
        return self._chain("autotune_configs", kernel=kernel, configs=list(configs), target=target)

    def clone_lifted_buffer(self, tensor):
        return self._call("clone_lifted_buffer", tensor=tensor)

    def clone_autotune_argument(self, tensor):
        return self._call("clone_autotune_argument", tensor=tensor)

    def choice_example(self, size, stride, dtype, device, storage_elements):
        return self._call("choice_example", size=size, stride=stride, dtype=dtype, device=device,
                          storage_elements=storage_elements)

    def pre_constant_dedup(self, name, tensor, other_name, other) -> bool | None:
        """``False`` when some plugin keeps the two constants apart, else ``None``."""
        answers = _answers(self._call("pre_constant_dedup", name=name, tensor=tensor, other_name=other_name,
                                      other=other))
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
        return self._call("autotune_example", name=name, tensor=tensor, written=written)

    def autotune_arguments(self, args: Sequence[Any], run: Callable[[], Any]) -> Any:
        """Run ``run()`` inside every plugin's ``autotune_arguments`` wrapper (the first plugin's outermost)."""
        return self._pm.hook.autotune_arguments.call_extra(
            [lambda args: run()], dict(args=args, session=self._session))

    def serialize_constant(self, name, tensor):
        return self._call("serialize_constant", name=name, tensor=tensor)


def installed_hooks(plugins: Sequence[tuple[str, Any]]) -> pluggy.PluginManager:
    """A plugin manager over ``plugins`` for the command-line hooks: outside any session, each
    plugin's failure a warning naming it, never an exception (`hookspecs.CLI_HOOKS`)."""
    pm = new_pluggy_manager()
    for name, plugin in reversed(plugins):
        try:
            register(pm, name, plugin, raising=False)
        except AotiHooksError as error:
            warnings.warn(str(error), AotiHooksWarning, stacklevel=2)
    return pm


def cli_answers(plugins: Sequence[tuple[str, Any]], hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """``[(plugin, answer)]`` of command-line hook ``hook`` over ``plugins``, in their order."""
    return _answers(getattr(installed_hooks(plugins).hook, hook)(**kwargs))
