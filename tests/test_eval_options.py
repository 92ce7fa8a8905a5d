"""The eval options are one dataclass: every field is a flag of `emidbench eval` and a key
of a run config's `eval:` / `models[i]:`, checked once (EvalOptions.check) with the
offending key named."""

from __future__ import annotations

import pytest
import yaml

from emidbench.common.errors import UserError
from emidbench.eval.options import EvalOptions
from emidbench.pipeline import EVAL_KEYS, load_run_config


def _config(tmp_path, **eval_section):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "run"), "benchmark": "mini", "models": ["tiny-llava"],
                                    "eval": eval_section}), encoding="utf-8")
    return path


def test_every_option_is_a_cli_flag_and_a_config_key():
    import typer.main

    from emidbench.cli import app

    command = typer.main.get_command(app).commands["eval"]
    flags = {p.name for p in command.params}
    # `api` (the chat client's options) is given on the command line as its parts
    api_flags = {"api_type", "api_version", "organization", "header", "timeout", "retries"}
    assert api_flags <= flags, api_flags - flags
    assert EvalOptions.names() - {"api"} <= flags, EvalOptions.names() - {"api"} - flags
    assert EVAL_KEYS == EvalOptions.names()


def test_config_values_reach_the_options_and_bad_ones_name_the_key(tmp_path):
    cfg = load_run_config(_config(tmp_path, attn_implementation="sdpa", tensor_parallel_size=2,
                                  limit_mm_per_prompt={"image": 1}, mm_processor_kwargs={"max_pixels": 1000},
                                  device_map="auto", group_by_length=False))
    opts = EvalOptions.from_mapping(cfg["eval"])
    opts.check()
    assert (opts.attn_implementation, opts.tensor_parallel_size, opts.limit_mm_per_prompt) == ("sdpa", 2, {"image": 1})
    for changes, message in [
        ({"tensor_parallel_size": 0}, "eval.tensor_parallel_size: --tensor-parallel-size must be at least 1 (got 0)"),
        ({"attn_implementation": "flash"}, "eval.attn_implementation: --attn-implementation must be one of sdpa, "
                                           "flash_attention_2, eager (got 'flash')"),
        ({"gpu_memory_utilization": 1.5}, "eval.gpu_memory_utilization: --gpu-memory-utilization must be in (0, 1]"),
        ({"limit_mm_per_prompt": {"image": "one"}}, "eval.limit_mm_per_prompt: --limit-mm-per-prompt must be a "
                                                    "mapping like"),
        ({"dtype": "float8"}, "eval.dtype: unknown --dtype 'float8'"),
        ({"device_map": "auto", "device": "cuda"}, "--device-map places the weights itself"),
    ]:
        with pytest.raises(UserError) as e:
            load_run_config(_config(tmp_path, **changes))
        assert message in str(e.value)


def test_cli_json_options_are_parsed():
    opts = EvalOptions.from_mapping({"limit_mm_per_prompt": '{"image": 2}', "mm_processor_kwargs": "{}"})
    assert opts.limit_mm_per_prompt == {"image": 2} and opts.mm_processor_kwargs == {}
    with pytest.raises(UserError, match="--mm-processor-kwargs: not JSON"):
        EvalOptions.from_mapping({"mm_processor_kwargs": "{max_pixels: 3}"})
