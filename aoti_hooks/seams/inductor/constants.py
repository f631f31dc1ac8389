"""Constants and their serialization: dedup goes to ``pre_constant_dedup``, the values AOTI writes to
``serialize_constant``.

- ``graph.is_same_tensor`` inside ``GraphLowering.allocate_non_dup_const_name``: two constants
  Inductor believes identical are merged only if no plugin keeps them apart;
- ``GraphLowering.get_original_value_of_constant`` (the weights blob, the wrapper's constant
  table), and ``TensorProperties``/``Weights`` on the ``pickle_weights`` path: the hooks' value.
A value whose bytes are on the host stays a constant of its stock device (`record.HostBacked`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.weak import WeakIdKeyDictionary

from .record import HostBacked, allocating_var, bind_lock, bound_graphs, check_layout, flagged, host_of, keep_device, record, session_for

# Host copy put in ``Weights`` -> the device of the constant it holds the bytes of (`as_constant`).
_host_devices: "WeakIdKeyDictionary" = WeakIdKeyDictionary()


def replacement(graph: Any, session, name: str, stock: torch.Tensor) -> torch.Tensor | None:
    """The hooks' value of constant ``name`` of ``graph`` (asked once per graph and name), or None for stock's."""
    cached = record(session).replacements
    with bind_lock:
        answers = cached.setdefault(graph, {})
        if name in answers:
            return answers[name]
    given = session.hooks.serialize_constant(name, stock)
    if given is not None:
        check_layout("serialize_constant", name, stock, given)
        given = keep_device(session, stock, given)
    with bind_lock:
        return answers.setdefault(name, given)


def _patched_allocate(original: Callable) -> Callable:
    def allocate_non_dup_const_name(self, name, data):
        session = session_for(self)
        if session is None:
            return original(self, name, data)
        with flagged(allocating_var, (self, name, session)):
            return original(self, name, data)

    return allocate_non_dup_const_name


def _patched_is_same_tensor(original: Callable) -> Callable:
    def is_same_tensor(data, value):
        same = original(data, value)
        allocating = allocating_var.get()
        if not same or allocating is None:
            return same
        graph, name, session = allocating
        other_name = next((key for key, tensor in graph.constants.items() if tensor is value), None)
        return session.hooks.pre_constant_dedup(name, data, other_name, value) is not False

    return is_same_tensor


def _patched_original_value(original: Callable) -> Callable:
    def get_original_value_of_constant(self, name):
        stock = original(self, name)
        session = session_for(self)
        if session is None:
            return stock
        given = replacement(self, session, name, stock)
        return stock if given is None else given

    return get_original_value_of_constant


def _patched_tensor_properties(original: Callable) -> Callable:
    """Describe the value a hook gave (its storage) rather than the live constant's."""

    def tensor_properties(tensor):
        for graph, session in bound_graphs():
            for name, constant in getattr(graph, "constants", {}).items():
                if constant is tensor:
                    written = graph.get_original_value_of_constant(name)
                    if record(session).is_given(written):
                        return original(host_of(written))
        return original(tensor)

    return tensor_properties


def _patched_weights(original: Callable) -> Callable:
    """``Weights`` hold the host copy (torch pickles them); `as_constant` finds the constant again."""

    def weights(weight_dict):
        unwrapped = {}
        for key, (value, props) in weight_dict.items():
            if isinstance(value, HostBacked):
                _host_devices[value.host] = value.device
                value = value.host
            unwrapped[key] = (value, props)
        return original(unwrapped)

    return weights


def as_constant(tensor: Any) -> Any:
    """The host-backed constant for a host copy put in ``Weights`` (its device is the constant's)."""
    device = _host_devices.get(tensor) if isinstance(tensor, torch.Tensor) else None
    return tensor if device is None else HostBacked(tensor, tensor, device)


MAKERS = {
    "torch._inductor.graph.is_same_tensor": _patched_is_same_tensor,
    "torch._inductor.graph.GraphLowering.allocate_non_dup_const_name": _patched_allocate,
    "torch._inductor.graph.GraphLowering.get_original_value_of_constant": _patched_original_value,
    "torch._inductor.codecache.TensorProperties": _patched_tensor_properties,
    "torch._inductor.codecache.Weights": _patched_weights,
}
