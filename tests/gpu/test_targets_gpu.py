"""A target of several GPUs, compiled on the GPU here: one package whose every kernel is a fatbin with
code for each GPU named (this one among them), that runs here and gives stock's outputs; `inspect`
reads the package and finds every kernel launching on each GPU named."""

import pytest
import torch
from matrix_cells import HUGGING_FACE, INDUCTOR_CONFIGS, _compiled, _decode, _output_problems

import aoti_hooks
from aoti_hooks.core.target import parse_target
from aoti_hooks.tools.kernels import built_for, problems_on, read_package

pytestmark = pytest.mark.gpu

TARGET = "rtx4090,rtx5090,h100"


@pytest.mark.parametrize("config", [{}, {"max_autotune": True}], ids=["default", "max_autotune"])
def test_a_package_for_several_gpus_runs_here_and_gives_stocks_outputs(config, tmp_path):
    from torch.export.passes import move_to_device_pass

    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the target names an sm_90 GPU (h100): this GPU runs none of its images")
    model = HUGGING_FACE
    options = {**INDUCTOR_CONFIGS, **config}
    program = move_to_device_pass(model.export(model.build()), "cuda:0")
    want = _decode(model, _compiled(program, tmp_path / "stock.pt2", options), "cuda")
    with aoti_hooks.session(["kv_elide"], target=TARGET) as session:
        path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "several.pt2"), inductor_configs=options)
    got = _decode(model, path, "cuda")
    assert not _output_problems(got, want, exact=not config)  # max_autotune may choose otherwise under the cap
    found = read_package(path)
    assert found["kernels"] and problems_on(found, parse_target(TARGET)) == []
    assert {"sm_89", "sm_90", "sm_120"} <= set(built_for(found))
    assert session.report.get("target").get("fatbins_baked")
