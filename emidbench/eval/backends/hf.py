"""Backend `hf`: any image-text-to-text model transformers loads (LLaVA-1.5/NeXT,
Qwen2-VL, Idefics, SmolVLM, the bundled tiny-llava, your checkpoint) through
AutoProcessor + AutoModelForImageTextToText and the processor's own chat template.

Batched greedy generation with left padding (a batch gives the answers batch size 1
gives). The processor and config load at once (they decide the prompt and the cache
key); the weights load on the first batch, so a rerun answered from the cache never
loads them. Loading, device and dtype helpers are in `emidbench.common.hf`.
"""

from __future__ import annotations

from pathlib import Path

from emidbench.common.errors import UserError, first_line
from emidbench.common.hf import (
    bundled_names,
    load_pretrained,
    pick_device,
    pick_dtype,
    resolve_model,
    weights_fingerprint,
)
from emidbench.eval.backends import BACKENDS, Request, Result


@BACKENDS.register("hf", "transformers: AutoProcessor + AutoModelForImageTextToText, batched greedy")
class HFBackend:
    def __init__(self, model: str, batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
                 dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False, **_):
        from transformers import AutoConfig, AutoProcessor
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        self.model_id = model
        self.path = resolve_model(model)
        if self.path == model and model in bundled_names() and not Path(model).exists():
            raise UserError(f"the bundled model {model!r} is not in this installation (emidbench/assets/); "
                            "build it with scripts/train_tiny_llava.py, or pass a model path or hub id")
        self.trust_remote_code = trust_remote_code
        remote = {"trust_remote_code": True} if trust_remote_code else {}
        config = load_pretrained(AutoConfig, self.path, "a model config", **remote)
        model_type = getattr(config, "model_type", None)
        custom = trust_remote_code and bool(getattr(config, "auto_map", None))
        if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not custom:
            raise UserError(f"{model} is not an image-text-to-text model (model type {model_type!r}); the hf "
                            "backend runs what AutoModelForImageTextToText loads: LLaVA, LLaVA-NeXT, Qwen2-VL, "
                            "Idefics, SmolVLM, ...")
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.processor = load_pretrained(AutoProcessor, self.path, "a processor", **remote)
        if getattr(self.processor, "chat_template", None) is None:
            raise UserError(f"{model}: its processor has no chat template; emidbench prompts a model only "
                            "through its own template (add one to the checkpoint's processor)")
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None or not hasattr(self.processor, "image_processor"):
            raise UserError(f"{model}: AutoProcessor gave {type(self.processor).__name__}, not a processor for "
                            "images and text")
        self.tokenizer.padding_side = "left"  # generation continues each prompt: pad on the left
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        local = Path(self.path).expanduser()
        if local.is_dir():
            self.source = f"local:{weights_fingerprint(local)}"
        else:
            self.source = f"{self.path}@{getattr(config, '_commit_hash', None) or 'unknown-revision'}"
        dtype_name = str(self.dtype).replace("torch.", "")
        self.identity = f"hf:{self.source}:{dtype_name}"
        self._model = None

    # --------------------------------------------------------------- the protocol

    def record(self) -> dict:
        return {"resolved": str(self.path), "source": self.source, "device": self.device,
                "dtype": str(self.dtype).replace("torch.", ""), "batch_size": self.batch_size,
                "trust_remote_code": self.trust_remote_code}

    def prompt(self, req: Request) -> str:
        messages = []
        if req.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": req.system_prompt}]})
        messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": req.question}]})
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def answer(self, requests: list[Request]) -> list[Result]:
        from emidbench.benchmarks.base import decode_image

        self.load()
        prompts = [self.prompt(r) for r in requests]
        results: list[Result | None] = [None] * len(requests)
        images = {}
        for i, r in enumerate(requests):
            try:
                images[i] = decode_image(r.image, "image")
            except UserError as e:
                results[i] = Result("", prompts[i], str(e))
        ok = [i for i in range(len(requests)) if results[i] is None]
        try:
            texts = self._generate([images[i] for i in ok], [prompts[i] for i in ok]) if ok else []
        except Exception as e:  # one bad item (or memory) must not fail the batch: retry one by one
            if len(ok) == 1:
                texts = [None]
                results[ok[0]] = Result("", prompts[ok[0]], f"{type(e).__name__}: {first_line(e)}")
            else:
                self._free_memory()
                return [results[i] or self.answer([requests[i]])[0] for i in range(len(requests))]
        for i, text in zip(ok, texts):
            if text is not None:
                results[i] = Result(text, prompts[i])
        return results

    # --------------------------------------------------------------- internals

    def load(self) -> None:
        """Load the weights (once); `answer` calls it, the stage calls it before the first batch."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForImageTextToText

        remote = {"trust_remote_code": True} if self.trust_remote_code else {}
        model = load_pretrained(AutoModelForImageTextToText, self.path, "an image-text-to-text model",
                                dtype=self.dtype, **remote)
        self._model = model.to(self.device).eval()
        torch.manual_seed(0)  # only matters with --temperature > 0

    def _generate(self, images: list, prompts: list[str]) -> list[str]:
        import torch

        enc = self.processor(images=images, text=prompts, padding=True, return_tensors="pt")
        enc = enc.to(self.device, dtype=self.dtype)
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
        if self.tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        with torch.inference_mode():
            out = self._model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

    def _free_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
