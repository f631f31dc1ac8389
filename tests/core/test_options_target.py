import re

import pytest

from aoti_hooks import AotiHooksError, Option, parse_bool, parse_regex, parse_size, parse_target
from aoti_hooks.core.options import resolve_options


def test_sizes_parse_from_text_bytes_and_ints():
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size(b"32GiB") == 32 * 2**30
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size(4096) == 4096
    for bad in ("lots", "-1", "12 parsecs", True):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_bools_and_regexes():
    assert parse_bool(b"on") is True and parse_bool("false") is False and parse_bool(True) is True
    with pytest.raises(ValueError):
        parse_bool("maybe")
    assert parse_regex(b"kv_cache|key_cache_\\d+").search("layers.0.key_cache_0")
    with pytest.raises(ValueError, match="regular expression"):
        parse_regex("(")


OPTIONS = (
    Option("min_bytes", parse_size, "1MiB", "smallest buffer to elide"),
    Option("pattern", parse_regex, ".*", "regex on the buffer FQN"),
)


def test_resolve_options_fills_defaults_and_parses():
    resolved = resolve_options("kv_elide", OPTIONS, {"min_bytes": b"4MiB"})
    assert resolved["min_bytes"] == 4 * 2**20
    assert isinstance(resolved["pattern"], re.Pattern)


def test_unknown_option_names_the_known_ones():
    with pytest.raises(AotiHooksError, match=r"plugin 'kv_elide' has no option 'min_byte' \(did you mean 'min_bytes'\?\); "
                                             r"its options are: min_bytes, pattern"):
        resolve_options("kv_elide", OPTIONS, {"min_byte": "1"})


def test_bad_value_is_one_sentence_naming_plugin_option_and_help():
    with pytest.raises(AotiHooksError) as caught:
        resolve_options("kv_elide", OPTIONS, {"min_bytes": "huge"})
    message = str(caught.value)
    assert "'huge'" in message and "'min_bytes'" in message and "'kv_elide'" in message
    assert "smallest buffer to elide" in message and "\n" not in message


def test_target_profiles_local_and_explicit():
    five = parse_target("rtx5090")
    assert (five.smem, five.mem, five.device) == (101_376, 32 * 2**30, "cuda")
    assert parse_target(b"h100").smem == 232_448
    explicit = parse_target("smem=101376,mem=32GiB")
    assert (explicit.smem, explicit.mem, explicit.device) == (101_376, 32 * 2**30, None)
    assert parse_target("smem=1024,mem=1GiB,device=cpu").device == "cpu"
    assert parse_target(None).name == "local" and parse_target("local").name == "local"


def test_a_target_names_the_architecture_its_code_is_built_for():
    assert [parse_target(name).sm for name in ("rtx4090", "rtx5090", "a100", "h100")] == [89, 120, 80, 90]
    sized = parse_target("rtx5090,sm=90")  # a 5090's sizes, code for the sm_90 GPU that measures
    assert (sized.smem, sized.sm, sized.ptx, sized.name) == (101_376, 90, False, "rtx5090,sm=90")
    assert parse_target("a100,code=ptx").ptx and parse_target("a100,code=ptx").sm == 80
    assert parse_target("smem=49152,sm=8.6").sm == 86 and parse_target("smem=49152,sm=sm_75").sm == 75
    assert parse_target("smem=101376,mem=32GiB").sm is None  # no architecture: the compiling GPU's
    assert parse_target("rtx5090,sm=local").sm is None and parse_target("rtx5090,sm=local").smem == 101_376


def test_a_target_of_several_gpus_is_sized_for_the_smallest_and_built_for_each():
    several = parse_target("rtx4090,rtx5090,h100")
    assert (several.smem, several.mem, several.device, several.sm) == (101_376, 24 * 2**30, "cuda", None)
    assert several.gpus == ("rtx4090", "rtx5090", "h100")
    assert several.codes == ((89, False), (90, False), (120, False))
    later = parse_target("a100+")  # an A100 and every later GPU: its cubin, and PTX the driver builds
    assert (later.smem, later.codes) == (166_912, ((80, False), (80, True)))
    assert parse_target("a100+,rtx5090").codes == ((80, False), (80, True), (120, False))


@pytest.mark.parametrize("bad, says", [("rtx4090,rtx509", "'rtx509' is no GPU profile .did you mean 'rtx5090'"),
                                       ("rtx4090,rtx4090+", "named twice"),
                                       ("rtx4090,sm=90,h100", "sm= and code= apply to one GPU")])
def test_bad_targets_of_several_gpus_are_one_sentence(bad, says):
    with pytest.raises(AotiHooksError, match=says):
        parse_target(bad)


@pytest.mark.parametrize("bad, says", [("rtx5090,smem=1", "after a profile"), ("a100,code=sass", "code=cubin"),
                                       ("smem=1024,code=ptx", "add sm="), ("smem=1024,sm=9000", "no CUDA architecture")])
def test_bad_architectures_are_one_sentence(bad, says):
    with pytest.raises(AotiHooksError, match=says):
        parse_target(bad)


@pytest.mark.parametrize("bad", ["rtx9999", "smem=lots", "mem=1GiB,mem=2GiB", "speed=fast"])
def test_bad_targets_say_what_is_accepted(bad):
    with pytest.raises(AotiHooksError, match="target"):
        parse_target(bad)
