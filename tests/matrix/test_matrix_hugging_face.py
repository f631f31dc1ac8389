"""The configuration matrix (`matrix_cells`) on a Hugging Face Llama built from a config, static cache, exported as transformers exports it."""

import pytest
from matrix_cells import CONFIGS, HUGGING_FACE, check_row


@pytest.mark.parametrize("config", CONFIGS)
def test_each_plugin_and_all_four_give_stocks_outputs(config, tmp_path):
    check_row(HUGGING_FACE, config, tmp_path)
