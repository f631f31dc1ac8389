"""ExecuTorch's own Gemma 4 31B (tiny, seeded; see tests/support/real_models.py) lowered through an
``AotiBackend`` on the CPU, stock and with kv_elide + const_offload in its compile specs: every
cache claimed, the weights blob byte-equal, the delegate decodes like stock over wrapping steps."""

import pytest
import torch

pytest.importorskip("executorch.backends.aoti.aoti_backend")
pytest.importorskip("executorch.examples.models.gemma4_31b.model")

from et_helpers import BACKEND, DelegateRunner, delegates, input_names, lower, method_spec  # noqa: E402
from real_models import GEMMA4, gemma4_logits  # noqa: E402

import aoti_hooks  # noqa: E402
import aoti_hooks.executorch as integration  # noqa: E402

OPTIONS = {"kv_elide": {"min_bytes": "256B"}, "const_offload": {"min_bytes": "1KiB"}}


@pytest.fixture(scope="module", autouse=True)
def integration_for_this_module_only():
    """The import above turns the ExecuTorch integration on; it is on for these tests, off after them."""
    integration.install()
    yield
    integration.uninstall()


def lowered(folder, specs):
    model = GEMMA4.build()
    program = GEMMA4.export(model)
    with gemma4_logits():  # (ExecuTorch's own lowering empties the program's constants table, stock too)
        pte, edge = lower({"decode": program}, {"decode": specs})
    (backend_id, so, weights), = delegates(pte).values()
    runner = DelegateRunner(str(folder), so, weights, input_names(edge, "decode"))
    return {"backend": backend_id, "weights": weights, "outputs": GEMMA4.decode(runner), "caches": GEMMA4.caches(model)}


def test_gemma4_through_an_aoti_backend_with_both_plugins_equals_stock(tmp_path):
    stock = lowered(tmp_path / "stock", [method_spec("decode")])
    before = len(integration.report_history())
    ours = lowered(tmp_path / "ours", [method_spec("decode"), *aoti_hooks.compile_specs(
        ["kv_elide", "const_offload"], target="local", **OPTIONS)])
    (method, latest), = integration.report_history()[before:]  # one lowering with plugins, kept in order
    assert method == "decode" and latest is integration.reports()["decode"]
    report = latest.as_dict()
    by_plugin = {}
    for entry in report["placement"]["tensors"]:
        by_plugin.setdefault(entry["plugin"], set()).add(entry["fqn"])
    assert by_plugin["kv_elide"] == ours["caches"] and len(ours["caches"]) == 12
    assert "embed_tokens.weight" in by_plugin["const_offload"]  # the tied embedding / lm_head (one name left in the edge program)
    assert ours["backend"] == stock["backend"] == BACKEND
    assert ours["weights"] == stock["weights"]
    assert len({tuple(o.flatten().tolist()) for o in stock["outputs"]}) == len(GEMMA4.steps)
    for got, want, reference in zip(ours["outputs"], stock["outputs"], GEMMA4.eager()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4)
