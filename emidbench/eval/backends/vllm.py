"""Backend `vllm` (optional extra: pip install 'emidbench[vllm]', vLLM >= 0.6.2 for
`LLM.chat` with a list of conversations): vLLM's offline engine, for throughput on one
GPU and for models too big for one GPU (tensor parallelism).

    emidbench eval RUN --backend vllm --model Qwen/Qwen2-VL-7B-Instruct --tensor-parallel-size 4 \\
        --max-model-len 8192 --limit-mm-per-prompt '{"image": 1}' --batch-size 256

Requests go through `LLM.chat` (the image as a data URL, then the question), so vLLM
applies the model's own chat template. The prompt recorded in each answer (and in the
cache key) is that template rendered by transformers from the checkpoint's processor —
the same text the `hf` backend records; a template that refuses a system message beside
an image (Mllama) gets the system text folded into the user turn, as with `hf`.

Engine arguments (all optional; vLLM's defaults otherwise): --tensor-parallel-size
(default 1; checked against the visible GPUs and the model's attention heads before the
engine starts), --max-model-len, --gpu-memory-utilization, --max-num-seqs,
--limit-mm-per-prompt, --mm-processor-kwargs, --enforce-eager, --tokenizer-mode.
--dtype takes the names the hf backend takes (bf16, fp16, ...), normalised for vLLM.

A batch vLLM rejects (one bad image, a prompt longer than max_model_len) is retried one
request at a time: the others are answered, the bad one is that item's recorded
failure, and the fallback is counted (eval summary, eval.json).

The cache identity carries the revision (hub) or a content hash (local folder) of the
weights, the dtype, the tensor-parallel size and --mm-processor-kwargs / --tokenizer-mode
(they change what the model sees). vLLM batches continuously, so in bf16/fp16 an answer
can depend on what else is in flight; rerunning from the cache reproduces the run.

vLLM's API is used only through `VLLMApi` (import, SamplingParams, LLM, GPU count): the
seam the tests replace to check request construction and fallback without a GPU.
`scripts/vllm_smoke.py` runs the real engine on a GPU machine. It runs as one process
that drives all GPUs itself: do not start it under torchrun. For a vLLM *server*, run
`vllm serve` and use the `openai` backend with --base-url.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.hf import load_pretrained, resolve_model, weights_fingerprint
from emidbench.eval.backends import BACKENDS, Backend, Request, Result
from emidbench.eval.options import EvalOptions

VLLM_DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
               "bfloat16": "bfloat16", "bf16": "bfloat16"}


class VLLMApi:
    """The part of vLLM this backend uses."""

    def __init__(self):
        try:
            import vllm
        except ImportError:
            raise UserError("vllm is not installed: pip install 'emidbench[vllm]'") from None
        self.vllm = vllm

    def sampling_params(self, **kwargs):
        return self.vllm.SamplingParams(**kwargs)

    def start(self, engine_args: dict):
        """An engine with `chat(conversations, sampling_params, use_tqdm=False)`."""
        return self.vllm.LLM(**engine_args)

    def gpu_count(self) -> int:
        import torch

        return torch.cuda.device_count()


def normalise_dtype(dtype: str) -> str:
    try:
        return VLLM_DTYPES[str(dtype).lower()]
    except KeyError:
        raise UserError(f"unknown --dtype {dtype!r} (auto, float32, float16, bfloat16)") from None


def attention_heads(config) -> dict[str, int]:
    """The head counts tensor parallelism must divide: the language model's and the vision tower's."""
    out = {}
    text = getattr(config, "text_config", None) or config
    n = getattr(text, "num_attention_heads", None)
    if isinstance(n, int):
        out["language model attention heads"] = n
    kv = getattr(text, "num_key_value_heads", None)
    if isinstance(kv, int) and kv != n:
        out["language model key/value heads"] = kv
    vision = getattr(config, "vision_config", None)
    for attr in ("num_attention_heads", "num_heads", "attention_heads"):
        v = getattr(vision, attr, None) if vision is not None else None
        if isinstance(v, int):
            out["vision attention heads"] = v
            break
    return out


def check_tensor_parallel(tp: int, heads: dict[str, int], gpus: int | None) -> None:
    if gpus is not None and tp > gpus:
        raise UserError(f"--tensor-parallel-size {tp}: only {gpus} GPU{'s' if gpus != 1 else ''} visible "
                        "(CUDA_VISIBLE_DEVICES)")
    for what, n in heads.items():
        # vLLM shards query heads; key/value heads fewer than the GPUs are replicated instead
        if "key/value" in what and n < tp and tp % n == 0:
            continue
        if n % tp:
            fits = [d for d in range(1, n + 1) if n % d == 0 and (gpus is None or d <= gpus)]
            raise UserError(f"--tensor-parallel-size {tp} does not divide the model's {n} {what}; use one of "
                            f"{', '.join(map(str, fits))}")


@BACKENDS.register("vllm", "vLLM offline engine, tensor parallel over GPUs (pip install 'emidbench[vllm]')")
class VLLMBackend(Backend):
    shardable = False  # vLLM parallelises itself; torchrun ranks would each start an engine

    def __init__(self, model: str, options: EvalOptions, api: VLLMApi | None = None):
        from transformers import AutoConfig, AutoProcessor

        from emidbench.eval.backends.hf import PromptRenderer

        self.api = api or VLLMApi()  # first: without vLLM, one line before anything loads
        self.model_id = model
        self.options = options
        self.path = resolve_model(model)
        remote = {"trust_remote_code": True} if options.trust_remote_code else {}
        config = load_pretrained(AutoConfig, self.path, "a model config", **remote)
        self.tensor_parallel_size = options.tensor_parallel_size or 1
        check_tensor_parallel(self.tensor_parallel_size, attention_heads(config), None)
        self.dtype = normalise_dtype(options.dtype)
        processor = load_pretrained(AutoProcessor, self.path, "a processor", **remote)
        template = getattr(processor, "chat_template", None) or getattr(
            getattr(processor, "tokenizer", None), "chat_template", None)
        if template is None:
            raise UserError(f"{model}: its processor has no chat template; the vllm backend prompts through "
                            "LLM.chat, which needs one")
        self.renderer = PromptRenderer(processor, template=template)
        local = Path(self.path).expanduser()
        if local.is_dir():
            self.source = f"local:{weights_fingerprint(local)}"
        else:
            self.source = f"{self.path}@{getattr(config, '_commit_hash', None) or 'unknown-revision'}"
        self.identity = f"vllm:{self.source}:{self.dtype}:tp{self.tensor_parallel_size}"
        if options.mm_processor_kwargs:
            import json

            self.identity += ":mm" + json.dumps(options.mm_processor_kwargs, sort_keys=True)
        if options.tokenizer_mode:
            self.identity += f":tokenizer-{options.tokenizer_mode}"
        self.params = self.api.sampling_params(max_tokens=options.max_new_tokens, temperature=options.temperature,
                                               seed=0)
        # vLLM schedules its own batches; hand it many requests at once.
        self.batch_size = max(64, int(options.batch_size))
        self.fallbacks: Counter = Counter()
        self.llm = None

    @property
    def system_folded(self) -> bool:
        return self.renderer.system_folded

    def engine_args(self) -> dict:
        o = self.options
        args = {"model": str(Path(self.path).expanduser()) if Path(self.path).expanduser().is_dir() else self.path,
                "tensor_parallel_size": self.tensor_parallel_size, "dtype": self.dtype,
                "trust_remote_code": o.trust_remote_code, "seed": 0}
        for key in ("max_model_len", "gpu_memory_utilization", "max_num_seqs", "limit_mm_per_prompt",
                    "mm_processor_kwargs", "tokenizer_mode"):
            value = getattr(o, key)
            if value is not None:
                args[key] = value
        if o.enforce_eager:
            args["enforce_eager"] = True
        return args

    def load(self) -> None:
        if self.llm is None:
            check_tensor_parallel(self.tensor_parallel_size, {}, self.api.gpu_count())
            self.llm = self.api.start(self.engine_args())

    def record(self) -> dict:
        rec = {"source": self.source, "engine_args": self.engine_args(), "batch_size": self.batch_size}
        if self.system_folded:
            rec["system_prompt_placement"] = ("folded into the user turn (the chat template refuses a system "
                                              "message beside an image)")
        return rec

    def prompt(self, req: Request) -> str:
        return self.renderer.render(req)

    def conversation(self, req: Request) -> list[dict]:
        """The OpenAI-style messages LLM.chat takes: the same turns the recorded prompt renders."""
        from emidbench.common.chat import data_url

        url = data_url(req.image)  # raises for bytes that are no known image format
        question = req.question
        messages = []
        if req.system_prompt and self.system_folded:
            question = f"{req.system_prompt}\n\n{req.question}"
        elif req.system_prompt:
            messages.append({"role": "system", "content": req.system_prompt})
        messages.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                     {"type": "text", "text": question}]})
        return messages

    def answer(self, requests: list[Request], prompts: list[str] | None = None) -> list[Result]:
        prompts = prompts or [self.prompt(r) for r in requests]
        results: list[Result | None] = [None] * len(requests)
        conversations, index = [], []
        for i, r in enumerate(requests):
            try:
                conversations.append(self.conversation(r))
                index.append(i)
            except Exception:
                results[i] = Result("", prompts[i], "image does not decode (not a known image format)")
        if not conversations:
            return results
        self.load()
        try:
            outs = self.llm.chat(conversations, self.params, use_tqdm=False)
            if len(outs) != len(conversations):
                raise RuntimeError(f"vLLM returned {len(outs)} outputs for {len(conversations)} conversations")
        except Exception as e:
            return self.redo_alone(requests, prompts, index, results, e)
        for i, o in zip(index, outs):
            results[i] = Result(o.outputs[0].text.strip(), prompts[i])
        return results
