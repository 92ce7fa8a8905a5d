"""The eval stage's options, as one typed dataclass: `emidbench eval`'s flags, the
`eval:` / `models[i]:` sections of a run config (pipeline.EVAL_KEYS is its field names),
`run_eval`'s keywords, and what each backend reads (backends take an EvalOptions, not
loose keywords). `check()` is the one validation, run by the CLI, by `emidbench run`
before any stage starts (naming the config key), and by run_eval."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.hf import DTYPES
from emidbench.common.options import StageOptions, flag, is_int, is_num, positive_int

ATTN = ("sdpa", "flash_attention_2", "eager")
TOKENIZER_MODES = ("auto", "slow", "mistral", "custom")


@dataclass
class EvalOptions(StageOptions):
    STAGE = "eval"
    INTERNAL = frozenset({"extra"})

    # what is asked (every backend)
    backend: str = "hf"
    name: str | None = None  # folder under RUN/responses/ (default: the last part of the model)
    scenarios: str | None = None  # glob(s) over scenario names, comma-separated
    batch_size: int = 8
    max_new_tokens: int = 128
    temperature: float = 0.0
    system_prompt: str | None = None
    cache_dir: Path | None = None  # the response cache (default RUN/cache/responses)
    # hf and vllm
    dtype: str = "auto"
    trust_remote_code: bool = False
    # hf
    device: str = "auto"
    device_map: str | None = None  # "auto": accelerate spreads the weights over every GPU (and CPU)
    attn_implementation: str | None = None  # sdpa | flash_attention_2 | eager (default: transformers')
    group_by_length: bool = True  # batch requests of similar image size / prompt length within a scenario
    # vllm (engine arguments; None = vLLM's default)
    tensor_parallel_size: int | None = None  # default 1 (vLLM's); must divide the model's attention heads
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    limit_mm_per_prompt: dict | None = None  # e.g. {"image": 1}
    mm_processor_kwargs: dict | None = None  # e.g. {"max_pixels": 1003520}
    enforce_eager: bool = False
    tokenizer_mode: str | None = None  # auto | slow | mistral | custom
    # openai
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    # how to reach the server beyond URL and key: a ChatOptions mapping (api_type, api_version,
    # organization, headers, timeout, retries; emidbench/common/chat.py, which checks it and
    # the base URL where they are named: the CLI's options, a run config's keys, the client)
    api: dict | None = None
    extra: dict = field(default_factory=dict, repr=False)  # reserved; never set from outside

    def normalise(self) -> None:
        """JSON text for the dict options (the CLI passes them as text), Path for cache_dir."""
        for key in ("limit_mm_per_prompt", "mm_processor_kwargs"):
            value = getattr(self, key)
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as e:
                    raise UserError(f"--{flag(key)}: not JSON ({e.msg}): {value!r}") from None
                setattr(self, key, value)
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            self.cache_dir = Path(self.cache_dir)
        if isinstance(self.dtype, str):
            self.dtype = self.dtype.strip().lower()

    def check(self) -> None:
        """Every value's type and range; one line naming the option (UserError)."""
        self.normalise()
        self.check_each((
            ("batch_size", positive_int, "at least 1"),
            ("max_new_tokens", positive_int, "at least 1"),
            ("temperature", lambda v: is_num(v) and v >= 0, "0 (greedy) or more"),
            ("concurrency", positive_int, "at least 1"),
            ("device_map", lambda v: v is None or isinstance(v, str), "a device map name, e.g. auto"),
            ("attn_implementation", lambda v: v is None or v in ATTN, f"one of {', '.join(ATTN)}"),
            ("tensor_parallel_size", lambda v: v is None or positive_int(v), "at least 1"),
            ("max_model_len", lambda v: v is None or positive_int(v), "at least 1"),
            ("gpu_memory_utilization", lambda v: v is None or (is_num(v) and 0 < v <= 1), "in (0, 1]"),
            ("max_num_seqs", lambda v: v is None or positive_int(v), "at least 1"),
            ("limit_mm_per_prompt", lambda v: v is None or (isinstance(v, dict) and all(
                isinstance(k, str) and is_int(n) and n >= 0 for k, n in v.items())), 'a mapping like {"image": 1}'),
            ("mm_processor_kwargs", lambda v: v is None or isinstance(v, dict), "a mapping"),
            ("tokenizer_mode", lambda v: v is None or v in TOKENIZER_MODES, f"one of {', '.join(TOKENIZER_MODES)}"),
            ("enforce_eager", lambda v: isinstance(v, bool), "true or false"),
            ("trust_remote_code", lambda v: isinstance(v, bool), "true or false"),
            ("group_by_length", lambda v: isinstance(v, bool), "true or false"),
        ))
        if self.dtype not in DTYPES:
            raise UserError(f"unknown --dtype {self.dtype!r} (auto, float32, float16, bfloat16)")
        if self.device_map is not None and self.device not in ("auto",):
            raise UserError("--device-map places the weights itself; leave --device at auto")

    def public(self) -> dict:
        """For eval.json and fingerprints (no secrets here: api_key_env names a variable)."""
        out = asdict(self)
        out.pop("extra")
        out["cache_dir"] = str(self.cache_dir) if self.cache_dir is not None else None
        if self.api is not None:  # header names only: a gateway's header value may be a secret
            from emidbench.common.chat import ChatOptions

            out["api"] = ChatOptions.parse(self.api, "--api options").record()
        return out
