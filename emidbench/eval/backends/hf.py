"""Backend `hf`: any image-text-to-text model transformers loads (LLaVA-1.5/NeXT,
Qwen2-VL, Idefics, SmolVLM, the bundled tiny-llava, your checkpoint) through
AutoProcessor + AutoModelForImageTextToText and the processor's own chat template.
Batched greedy generation with left padding."""

from __future__ import annotations

import os
from pathlib import Path

from emidbench.errors import UserError
from emidbench.eval.backends import BACKENDS, Request, Result


def resolve_model(model: str) -> str:
    """`tiny-llava` -> the bundled folder; anything else as given (hub id or path)."""
    from emidbench.assets import bundled_model_path

    path = bundled_model_path(model)
    return str(path) if path is not None else model


def load_pretrained(loader, model_id: str, what: str, **kwargs):
    """from_pretrained with one clear error for the ways it fails offline or on bad paths."""
    local = Path(model_id).exists()
    try:
        return loader.from_pretrained(model_id, **kwargs)
    except ValueError as e:
        if "Unrecognized configuration class" in str(e) or "Unrecognized model" in str(e):
            raise UserError(f"{model_id} is not an image-text-to-text model ({what} cannot load it)") from None
        raise UserError(f"cannot load {model_id} as {what}: {str(e).splitlines()[0][:200]}") from None
    except OSError as e:
        if local:
            raise UserError(f"cannot load {model_id} as {what}: {str(e).splitlines()[0][:200]}") from None
        if model_id.startswith((".", "/", "~")) or os.sep in model_id.strip("/").replace("/", "", 1):
            raise UserError(f"model path {model_id} does not exist") from None
        raise UserError(f"cannot reach the Hugging Face hub for {model_id} (or it is not there); pass a local "
                        "path, or set HF_HUB_OFFLINE=1 with the model in your cache") from None


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    except KeyError:
        raise UserError(f"unknown --dtype {dtype!r} (auto, float32, float16, bfloat16)") from None


@BACKENDS.register("hf", "transformers: AutoProcessor + AutoModelForImageTextToText, batched greedy")
class HFBackend:
    def __init__(self, model: str, batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
                 dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False, **_):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.path = resolve_model(model)
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.processor = load_pretrained(AutoProcessor, self.path, "a processor", trust_remote_code=trust_remote_code)
        self.model = load_pretrained(AutoModelForImageTextToText, self.path, "an image-text-to-text model",
                                     trust_remote_code=trust_remote_code,
                                     dtype=pick_dtype(dtype, self.device)).to(self.device).eval()
        if getattr(self.processor, "chat_template", None) is None:
            raise UserError(f"{model}: the processor has no chat template; emidbench prompts models only "
                            "through their own template")
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # generation continues the prompt: pad on the left
        self.identity = f"hf:{model}:{_weights_fingerprint(self.path)}"
        torch.manual_seed(0)

    def prompt(self, req: Request) -> str:
        messages = []
        if req.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": req.system_prompt}]})
        messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": req.question}]})
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def answer(self, requests: list[Request]) -> list[Result]:
        import torch

        from emidbench.benchmarks.base import decode_image

        prompts, images, results = [], [], [None] * len(requests)
        for i, r in enumerate(requests):
            prompts.append(self.prompt(r))
            try:
                images.append(decode_image(r.image, "image"))
            except UserError as e:
                results[i] = Result("", prompts[-1], str(e))
                images.append(None)
        ok = [i for i, res in enumerate(results) if res is None]
        if ok:
            enc = self.processor(images=[images[i] for i in ok], text=[prompts[i] for i in ok], padding=True,
                                 return_tensors="pt").to(self.device)
            gen_kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
            if self.temperature > 0:
                gen_kwargs["temperature"] = self.temperature
            with torch.no_grad():
                out = self.model.generate(**enc, **gen_kwargs)
            texts = self.processor.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, t in zip(ok, texts):
                results[i] = Result(t.strip(), prompts[i])
        return results


def _weights_fingerprint(path: str) -> str:
    """Changes when local weights change (so the response cache never serves stale answers)."""
    p = Path(path)
    if not p.is_dir():
        return "hub"
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p.glob("*")):
        if f.is_file():  # content for small files, size for big shards (hashing GBs is not worth it)
            size = f.stat().st_size
            h.update(f"{f.name}:{size}:".encode())
            if size < 64 * 2**20:
                h.update(f.read_bytes())
    return h.hexdigest()[:16]
