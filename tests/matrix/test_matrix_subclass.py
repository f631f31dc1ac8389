"""The configuration matrix (`matrix_cells`) on a model whose weights are a tensor subclass (torchao's int4 IntxUnpackedToInt8Tensor)."""

import pytest
from matrix_cells import CONFIGS, SUBCLASS, check_row


@pytest.mark.parametrize("config", CONFIGS)
def test_each_plugin_and_all_four_give_stocks_outputs(config, tmp_path):
    check_row(SUBCLASS, config, tmp_path)
