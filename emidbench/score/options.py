"""The score stage's options, as one typed dataclass: `emidbench score`'s flags, a run
config's `score:` section (pipeline.SCORE_KEYS is its field names), `run_score`'s and
`fit_shared_estimator`'s keywords, and what the embedder and the judge are built with
(`embedder_options()`, `judge_options()`: typed, no loose keywords). `check()` is the one
validation, run by the CLI, by `emidbench run` before any stage starts (naming the config
key), and by run_score."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from emidbench.common.errors import UserError
from emidbench.common.hf import DTYPES
from emidbench.common.options import StageOptions, is_int, is_num, positive_int
from emidbench.embedders import EmbedderOptions
from emidbench.score.estimator import mode_of
from emidbench.score.judges import JudgeOptions


@dataclass
class ScoreOptions(StageOptions):
    STAGE = "score"

    # embeddings
    embedder: str = "offline"  # paper | offline
    vision_encoder: str | None = None  # paper embedder: the CLIP checkpoint
    text_encoder: str | None = None  # paper embedder: the XLM-R checkpoint
    device: str = "auto"  # where the paper embedder and an hf judge run (auto: cuda > mps > cpu)
    # the estimator and the metrics
    estimator: str = "shared"  # shared | refit | fit-per-model | a CLUB checkpoint path
    estimator_ensemble: int = 1
    id_scenario: str | None = None  # default: the manifest's
    entropy_scaler: float | None = None
    bootstrap: int = 0
    seed: int = 0
    # the judge
    judge: str | None = None  # openai:<model> | hf:<id or path> | offline
    judge_rules: str | None = None  # LLaVA's rule.json, used verbatim
    debias: bool = False
    judge_base_url: str | None = None  # openai judge
    judge_api_key_env: str = "OPENAI_API_KEY"  # openai judge: the variable holding the key
    judge_api: dict | None = None  # openai judge: ChatOptions (api_type, api_version, headers, timeout, ...)
    concurrency: int = 4  # openai judge: requests in flight
    judge_batch_size: int = 8  # hf judge: prompts per generate call
    judge_dtype: str = "auto"  # hf judge
    judge_max_tokens: int | None = None  # the reply's length limit (default: openai 1024, hf 256)

    def normalise(self) -> None:
        if self.judge_rules is not None:
            self.judge_rules = str(self.judge_rules)
        if isinstance(self.judge_dtype, str):
            self.judge_dtype = self.judge_dtype.strip().lower()

    def check(self) -> None:
        """Every value's type and range; one line naming the option (UserError)."""
        self.normalise()
        self.check_each((
            ("estimator_ensemble", positive_int, "a positive number of estimators"),
            ("bootstrap", lambda v: is_int(v) and v >= 0, "0 (none) or a number of resamples"),
            ("seed", is_int, "an integer"),
            ("concurrency", positive_int, "at least 1"),
            ("judge_batch_size", positive_int, "at least 1"),
            ("judge_max_tokens", lambda v: v is None or positive_int(v), "at least 1"),
            ("entropy_scaler", lambda v: v is None or (is_num(v) and math.isfinite(v) and v > 0),
             "a positive number"),
            ("debias", lambda v: isinstance(v, bool), "true or false"),
            ("judge_dtype", lambda v: v in DTYPES, "auto, float32, float16 or bfloat16"),
        ))
        if self.estimator_ensemble > 1 and mode_of(str(self.estimator)) == "path":
            raise UserError(f"--estimator-ensemble fits estimators with other seeds; the checkpoint {self.estimator} "
                            "is one fixed estimator (use --estimator shared, refit or fit-per-model)")

    def embedder_options(self) -> EmbedderOptions:
        return EmbedderOptions(vision_encoder=self.vision_encoder, text_encoder=self.text_encoder, device=self.device)

    def judge_options(self) -> JudgeOptions:
        return JudgeOptions(base_url=self.judge_base_url, api_key_env=self.judge_api_key_env, api=self.judge_api,
                            concurrency=self.concurrency, batch_size=self.judge_batch_size, device=self.device,
                            dtype=self.judge_dtype, max_tokens=self.judge_max_tokens)

    def public(self) -> dict:
        """For score.json (no secrets: judge_api_key_env names a variable; header values dropped)."""
        out = asdict(self)
        if self.judge_api is not None:
            from emidbench.common.chat import ChatOptions

            out["judge_api"] = ChatOptions.parse(self.judge_api, "--judge api options").record()
        return out

