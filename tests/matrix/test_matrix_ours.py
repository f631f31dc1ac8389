"""The configuration matrix (`matrix_cells`) on a model of ours (a linear layer, inlined 0-d and 2-element buffers, a lifted constant, a cache)."""

import pytest
from matrix_cells import CONFIGS, OURS, check_row


@pytest.mark.parametrize("config", CONFIGS)
def test_each_plugin_and_all_four_give_stocks_outputs(config, tmp_path):
    check_row(OURS, config, tmp_path)
