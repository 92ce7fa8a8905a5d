"""The vllm backend without vLLM or a GPU: vLLM's API sits behind `VLLMApi` (import,
SamplingParams, LLM, GPU count); a stand-in for that seam records what the backend asks
and answers like LLM.chat. What is tested is ours: engine arguments, tensor-parallel
checks, dtype names, the rendered prompt, the conversations sent, the cache identity and
the item-by-item retry of a failed batch. (scripts/vllm_smoke.py runs the real engine.)"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import sample_image

import emidbench.eval.backends.vllm as vllm_backend
from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.eval.backends import Request
from emidbench.eval.backends.vllm import VLLMBackend, normalise_dtype
from emidbench.eval.options import EvalOptions
from emidbench.rundir import RunDir
from tests.families import build


class StandInApi:
    """Answers like LLM.chat: one output per conversation, in order. A conversation whose
    question contains "overlong" is rejected (as vLLM rejects a prompt over max_model_len),
    failing the whole call it is part of."""

    def __init__(self, gpus: int = 2):
        self.gpus = gpus
        self.started: list[dict] = []
        self.calls: list[list] = []

    def sampling_params(self, **kwargs):
        return dict(kwargs)

    def start(self, engine_args: dict):
        self.started.append(engine_args)
        return self

    def gpu_count(self) -> int:
        return self.gpus

    def chat(self, conversations, params, use_tqdm=False):
        self.calls.append(conversations)
        questions = [c[-1]["content"][-1]["text"] for c in conversations]
        if any("overlong" in q for q in questions):
            raise ValueError("The decoder prompt (length 9000) is longer than the maximum model length of 8192.")
        return [SimpleNamespace(outputs=[SimpleNamespace(text=f" said {len(q)} ")]) for q in questions]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return build("qwen2_vl", tmp_path_factory.mktemp("qwen2_vl"))


@pytest.fixture(scope="module")
def mllama_dir(tmp_path_factory):
    return build("mllama", tmp_path_factory.mktemp("mllama"))


def test_engine_arguments_and_identity(qwen_dir):
    api = StandInApi()
    opts = EvalOptions(backend="vllm", dtype="bf16", tensor_parallel_size=2, max_model_len=8192,
                       gpu_memory_utilization=0.85, max_num_seqs=64, limit_mm_per_prompt={"image": 1},
                       mm_processor_kwargs={"max_pixels": 1003520}, enforce_eager=True, tokenizer_mode="auto")
    b = VLLMBackend(str(qwen_dir), opts, api=api)
    b.load()
    [args] = api.started
    assert args == {"model": str(qwen_dir), "tensor_parallel_size": 2, "dtype": "bfloat16", "trust_remote_code": False,
                    "seed": 0, "max_model_len": 8192, "gpu_memory_utilization": 0.85, "max_num_seqs": 64,
                    "limit_mm_per_prompt": {"image": 1}, "mm_processor_kwargs": {"max_pixels": 1003520},
                    "tokenizer_mode": "auto", "enforce_eager": True}
    assert b.identity.startswith("vllm:local:") and ":bfloat16:tp2:mm" in b.identity
    plain = VLLMBackend(str(qwen_dir), EvalOptions(backend="vllm"), api=StandInApi())
    assert plain.engine_args() == {"model": str(qwen_dir), "tensor_parallel_size": 1, "dtype": "auto",
                                   "trust_remote_code": False, "seed": 0}
    assert plain.identity != b.identity


def test_dtype_names_are_normalised_for_vllm():
    assert [normalise_dtype(d) for d in ("bf16", "fp16", "fp32", "auto", "BFloat16")] == [
        "bfloat16", "float16", "float32", "auto", "bfloat16"]


def test_tensor_parallel_size_is_checked(qwen_dir):
    # the tiny Qwen2-VL has 2 attention heads (language model and vision tower)
    with pytest.raises(UserError, match=r"--tensor-parallel-size 4 does not divide the model's 2 language model "
                                        r"attention heads; use one of 1, 2"):
        VLLMBackend(str(qwen_dir), EvalOptions(backend="vllm", tensor_parallel_size=4), api=StandInApi())
    b = VLLMBackend(str(qwen_dir), EvalOptions(backend="vllm", tensor_parallel_size=2), api=StandInApi(gpus=1))
    with pytest.raises(UserError, match="--tensor-parallel-size 2: only 1 GPU visible"):
        b.load()
    with pytest.raises(UserError, match="--tensor-parallel-size must be at least 1"):
        EvalOptions(tensor_parallel_size=0).check()


def test_recorded_prompt_is_the_rendered_template_and_messages_match(qwen_dir, mllama_dir):
    b = VLLMBackend(str(qwen_dir), EvalOptions(backend="vllm"), api=StandInApi())
    req = Request(sample_image(0), "What color is the circle?", "Be brief.")
    prompt = b.prompt(req)
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>") and "<|image_pad|>" in prompt
    conv = b.conversation(req)
    assert conv[0] == {"role": "system", "content": "Be brief."}
    assert conv[1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    # Mllama refuses a system message beside an image: folded into the user turn, in the prompt and the messages
    m = VLLMBackend(str(mllama_dir), EvalOptions(backend="vllm"), api=StandInApi())
    prompt = m.prompt(req)
    assert "Be brief.\n\nWhat color" in prompt and m.system_folded
    assert [t["role"] for t in m.conversation(req)] == ["user"]
    assert m.conversation(req)[0]["content"][1]["text"] == "Be brief.\n\nWhat color is the circle?"
    assert "folded" in m.record()["system_prompt_placement"]


def test_a_failed_batch_is_retried_item_by_item_and_counted(qwen_dir, make_run, monkeypatch):
    api = StandInApi()
    monkeypatch.setattr(vllm_backend, "VLLMApi", lambda: api)
    qs = ["What color is the circle?", "an overlong question", "How many shapes are in the image?"]
    run = make_run({"bench": [(i, sample_image(i), q) for i, q in enumerate(qs)] + [(3, b"not an image", "x")]})
    s = run_eval(run, str(qwen_dir), backend="vllm", name="v")
    assert (s.done, s.failed) == (2, 2)
    assert s.fallbacks == {"ValueError: The decoder prompt (length 9000) is longer than the maximum model length "
                           "of 8192.": 3}
    assert [len(c) for c in api.calls] == [3, 1, 1, 1]  # the batch, then each item alone
    recs = {r["question_id"]: r for r in read_jsonl(RunDir(run).responses_path("v", "bench"))}
    assert recs[0]["text"] == f"said {len(qs[0])}" and recs[2]["text"] == f"said {len(qs[2])}"
    assert "maximum model length" in recs[1]["metadata"]["error"]
    assert "does not decode" in recs[3]["metadata"]["error"]
    assert recs[0]["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.")  # the rendered prompt
    record = json.loads((RunDir(run).responses_dir("v") / "eval.json").read_text())
    assert record["last_run"]["fallbacks"]["items"] == 3
    assert record["identity"].startswith("vllm:local:") and record["options"]["engine_args"]["seed"] == 0
    again = run_eval(run, str(qwen_dir), backend="vllm", name="v")  # answered ones come back, failed ones retried
    assert (again.skipped, again.failed) == (2, 2)
