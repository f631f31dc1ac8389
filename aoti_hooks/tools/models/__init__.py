"""The models the tools build: the built-in decoder (`decoder`), ExecuTorch's Gemma 4 31B as its
export script builds it (`et_gemma4`), Hugging Face models from a config (`hf`)."""
