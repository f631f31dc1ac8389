"""The built-in decoder that `aoti-hooks demo`, the benchmarks and the tests export."""

from .model import CONFIGS, Decoder, DecoderConfig, build, decode_steps, export_decoder

__all__ = ["CONFIGS", "Decoder", "DecoderConfig", "build", "decode_steps", "export_decoder"]
