"""The configuration matrix's GPU half (`matrix_cells`): const_offload alone and all four, on a Hugging
Face Llama built from a config, under the configurations whose readers differ on a GPU: freezing
(a pass over every constant, so placement leaves every claim out and says why) and max_autotune
(Triton templates timed on the weights). Each compiles and gives stock's outputs."""

import pytest
from matrix_cells import HUGGING_FACE, PLUGIN_SETS, check_row

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("config", ["default", "freezing", "max_autotune"])
def test_const_offload_and_all_four_give_stocks_outputs_on_the_gpu(config, tmp_path):
    check_row(HUGGING_FACE, config, tmp_path, device="cuda",
              plugin_sets={name: PLUGIN_SETS[name] for name in ("const_offload", "all_four")})
