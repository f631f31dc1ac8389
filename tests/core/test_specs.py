import sys

import pytest

import aoti_hooks
from aoti_hooks import AotiHooksError
from aoti_hooks.core.specs import compile_spec_pairs, parse_compile_specs, session_from_compile_specs


class Spec:
    """Stands in for ExecuTorch's CompileSpec dataclass (key: str, value: bytes)."""

    def __init__(self, key, value):
        self.key, self.value = key, value


def test_builder_and_parser_round_trip():
    pairs = compile_spec_pairs(["kv_elide", "chunked_dequant"], target="rtx5090",
                               chunked_dequant={"max_transient": "512MiB"}, kv_elide={"pattern": "cache"})
    assert pairs == [
        ("aoti_hooks.plugins", b"kv_elide,chunked_dequant"),
        ("aoti_hooks.target", b"rtx5090"),
        ("aoti_hooks.chunked_dequant.max_transient", b"512MiB"),
        ("aoti_hooks.kv_elide.pattern", b"cache"),
    ]
    args = parse_compile_specs([Spec(k, v) for k, v in pairs] + [Spec("max_autotune", b"1")])
    assert args.plugins == ["kv_elide", "chunked_dequant"]
    assert args.target == "rtx5090"
    assert args.options == {"chunked_dequant": {"max_transient": "512MiB"}, "kv_elide": {"pattern": "cache"}}


def test_specs_without_aoti_hooks_keys_ask_for_nothing():
    assert parse_compile_specs([Spec("max_autotune", b"1")]) is None
    assert session_from_compile_specs([]) is None


@pytest.mark.parametrize(
    "specs, message",
    [
        ([("aoti_hooks.kv_elide.min_bytes", b"1")], "no 'aoti_hooks.plugins'"),
        ([("aoti_hooks.plugins", b"a"), ("aoti_hooks.plugins", b"b")], "given twice"),
        ([("aoti_hooks.plugins", b"a"), ("aoti_hooks.oops", b"1")], "unknown compile spec 'aoti_hooks.oops'"),
    ],
)
def test_malformed_specs_are_named(specs, message):
    with pytest.raises(AotiHooksError, match=message):
        parse_compile_specs(specs)


def test_options_for_an_unlisted_plugin_are_refused():
    with pytest.raises(AotiHooksError, match="not in the plugin list"):
        compile_spec_pairs(["kv_elide"], sdpa_configs={"x": 1})


def test_session_from_specs_parses_option_values(register):
    plugin = type("P", (), {"OPTIONS": (aoti_hooks.Option("budget", aoti_hooks.parse_size, "1MiB", "budget"),)})()
    register("budgeted", plugin)
    session = session_from_compile_specs([("aoti_hooks.plugins", b"budgeted"), ("aoti_hooks.budgeted.budget", b"2MiB"),
                                          ("aoti_hooks.target", b"smem=1024,mem=1GiB")])
    assert session.options_for("budgeted") == {"budget": 2 * 2**20}
    assert session.target.smem == 1024


def test_compile_specs_without_executorch_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch.exir.backend.compile_spec_schema", None)
    with pytest.raises(AotiHooksError, match=r'pip install "aoti-hooks\[executorch\]"'):
        aoti_hooks.compile_specs(["kv_elide"])


def test_compile_specs_builds_executorch_entries():
    schema = pytest.importorskip("executorch.exir.backend.compile_spec_schema")
    specs = aoti_hooks.compile_specs(["kv_elide"], target="h100")
    assert all(isinstance(spec, schema.CompileSpec) for spec in specs)
    assert parse_compile_specs(specs).plugins == ["kv_elide"]
