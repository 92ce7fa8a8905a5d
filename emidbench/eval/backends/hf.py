"""Backend `hf`: any image-text-to-text model transformers loads (LLaVA-1.5/NeXT/OneVision,
Qwen2/2.5/3-VL, Idefics3, SmolVLM, Gemma 3, PaliGemma, Mllama, InternVL, Mistral3, Pixtral,
Aya Vision, Phi-4-multimodal, the bundled tiny-llava, your checkpoint) through
AutoProcessor + AutoModelForImageTextToText (AutoModelForMultimodalLM for
Phi-4-multimodal) and the checkpoint's own chat template (the processor's, else the
tokenizer's).

Tokenisation is transformers' own `processor.apply_chat_template(..., tokenize=True)`:
the template is rendered to text, then the processor tokenises it with
`add_special_tokens=False` when the rendering already starts with BOS (Gemma 3, Mllama,
Idefics3, SmolVLM, Mistral3, Pixtral, Aya Vision) — exactly one BOS, never two — and
images go in nested, one list per prompt (`[[img], [img], ...]`), which every
processor reads as one image per sample.

Batched greedy generation with left padding. In float32 a batch gives the answers batch
size 1 gives (tested for every family). In bfloat16/float16 a padded batch runs other
kernels and can change a rare near-tie greedy step, so the batch size is part of the
response-cache identity there (see the README, eval).

An item that fails inside a batch (a processor error, an image the model cannot take,
memory) sends the batch to be redone one item at a time: the items that then succeed are
answered, the one that fails is that item's recorded failure, and every fallback is
counted with its reason (`fallbacks`: eval summary and eval.json).

The processor and config load at once (they decide the prompt and the cache key); the
weights load on the first batch, so a rerun answered from the cache never loads them.
Loading, device and dtype helpers are in `emidbench.common.hf`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.hf import (
    bundled_names,
    load_pretrained,
    pick_device,
    pick_dtype,
    resolve_model,
    weights_fingerprint,
)
from emidbench.eval.backends import BACKENDS, Backend, Request, Result
from emidbench.eval.options import EvalOptions

# Families whose hub checkpoints ship no chat template: the documented plain prompt. The
# processor itself adds what the family's prompt format needs around it (PaliGemma: the
# image tokens, BOS and the "\n" that ends the prefix).
PLAIN_PROMPTS = {
    "paligemma": "the question as-is (with --system-prompt: the system text, a blank line, the question)",
}
# Multimodal models outside the image-text-to-text mapping that take an image and text
# through AutoModelForMultimodalLM (image + audio models): Phi-4-multimodal.
MULTIMODAL_LM = {"phi4_multimodal"}
# Families that take one image per prompt: in-context examples (earlier turns with their
# own images) are refused with this reason. PaliGemma has no chat template (no turns);
# Meta recommends one image for Llama 3.2 Vision (it "doesn't work reliably well with
# multiple images", model card discussion #43).
ONE_IMAGE = {
    "paligemma": "PaliGemma takes one image and a plain prompt (no chat turns)",
    "mllama": "Llama 3.2 Vision is meant for one image per prompt (Meta: it does not work reliably with several)",
}
ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")


class PromptRenderer:
    """The prompt a request becomes: the processor's chat template (system message, then a
    user turn with the image and the question), or the family's plain prompt. A template
    that refuses a system message beside an image (Mllama) gets the system text at the
    start of the user turn instead, from then on (`system_folded`, recorded)."""

    def __init__(self, processor, plain: bool = False, template: str | None = None):
        self.processor = processor
        self.plain = plain
        self.system_folded = False
        # passed explicitly only when the processor has none of its own (it is the tokenizer's)
        self.template = {} if getattr(processor, "chat_template", None) or not template else {"chat_template": template}

    def render(self, req: Request) -> str:
        if self.plain:
            return f"{req.system_prompt}\n\n{req.question}" if req.system_prompt else req.question
        if req.system_prompt and not self.system_folded:
            messages = [{"role": "system", "content": [{"type": "text", "text": req.system_prompt}]},
                        *self.turns(req)]
            try:
                return self.processor.apply_chat_template(messages, add_generation_prompt=True, **self.template)
            except Exception as e:
                if "system" not in str(e).lower():
                    raise
                # Mllama's template: "Prompting with images is incompatible with system messages".
                self.system_folded = True
        return self.processor.apply_chat_template(self.turns(req, fold=req.system_prompt), add_generation_prompt=True,
                                                  **self.template)

    @staticmethod
    def turns(req: Request, fold: str | None = None) -> list[dict]:
        """The conversation: each in-context example as a user turn (its image, its question)
        and the assistant turn answering it, then the question. `fold`: a system text put
        at the start of the first user turn."""
        def user(text: str) -> dict:
            return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}

        messages = []
        for ex in req.examples:
            messages += [user(ex.question), {"role": "assistant", "content": [{"type": "text", "text": ex.answer}]}]
        messages.append(user(req.question))
        if fold:
            first = messages[0]["content"][1]
            first["text"] = f"{fold}\n\n{first['text']}"
        return messages


@BACKENDS.register("hf", "transformers: AutoProcessor + AutoModelForImageTextToText, batched greedy")
class HFBackend(Backend):

    def __init__(self, model: str, options: EvalOptions):
        import transformers
        from transformers import AutoConfig, AutoProcessor
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        self.model_id = model
        self.options = options
        self.path = resolve_model(model)
        if self.path == model and model in bundled_names() and not Path(model).exists():
            raise UserError(f"the bundled model {model!r} is not in this installation (emidbench/assets/); "
                            "build it with scripts/train_tiny_llava.py, or pass a model path or hub id")
        self.trust_remote_code = options.trust_remote_code
        remote = {"trust_remote_code": True} if self.trust_remote_code else {}
        config = load_pretrained(AutoConfig, self.path, "a model config", **remote)
        self.model_type = getattr(config, "model_type", None)
        custom = self.trust_remote_code and bool(getattr(config, "auto_map", None))
        self.multimodal_lm = self.model_type in MULTIMODAL_LM and self.model_type not in \
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        if self.multimodal_lm and not hasattr(transformers, "AutoModelForMultimodalLM"):
            raise UserError(f"{model}: this transformers has no AutoModelForMultimodalLM, which {self.model_type} "
                            "needs; pip install -U transformers")
        if self.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not custom and not self.multimodal_lm:
            raise UserError(f"{model} is not an image-text-to-text model (model type {self.model_type!r}); the hf "
                            "backend runs what AutoModelForImageTextToText loads: LLaVA, LLaVA-NeXT, Qwen2-VL, "
                            "Idefics, SmolVLM, ...")
        self.device_map = options.device_map
        self.device = pick_device(options.device) if self.device_map is None else "auto"
        if self.device_map:  # the weights go to the GPUs when there are any: their dtype default
            import torch

            self.dtype = pick_dtype(options.dtype, "cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.dtype = pick_dtype(options.dtype, self.device)
        self.attn_implementation = options.attn_implementation
        self.batch_size = options.batch_size
        self.max_new_tokens = options.max_new_tokens
        self.temperature = options.temperature
        self.processor = load_pretrained(AutoProcessor, self.path, "a processor", **remote)
        # The template: the processor's, else the tokenizer's (Phi-4-multimodal keeps it there)
        template = getattr(self.processor, "chat_template", None) or getattr(
            getattr(self.processor, "tokenizer", None), "chat_template", None)
        self.plain_prompt = template is None
        if self.plain_prompt and self.model_type not in PLAIN_PROMPTS:
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
        self.dtype_name = str(self.dtype).replace("torch.", "")
        self.identity = f"hf:{self.source}:{self.dtype_name}"
        if self.dtype_name != "float32":
            # half precision: a padded batch can change a near-tie greedy step (README, eval)
            self.identity += f":batch{self.batch_size}" + ("" if options.group_by_length else ":ungrouped")
        if self.attn_implementation:
            self.identity += f":{self.attn_implementation}"
        self.fallbacks: Counter = Counter()  # reason -> items redone alone
        self.renderer = PromptRenderer(self.processor, plain=self.plain_prompt, template=template)
        self._model = None

    # --------------------------------------------------------------- the protocol

    def record(self) -> dict:
        rec = {"resolved": str(self.path), "source": self.source, "device": self.device, "dtype": self.dtype_name,
               "batch_size": self.batch_size, "trust_remote_code": self.trust_remote_code,
               "device_map": self.device_map, "attn_implementation": self.attn_implementation,
               "group_by_length": self.options.group_by_length}
        if self.plain_prompt:
            rec["prompt_format"] = f"plain ({self.model_type}: {PLAIN_PROMPTS[self.model_type]})"
        if self.system_folded:
            rec["system_prompt_placement"] = ("folded into the user turn (the chat template refuses a system "
                                              "message beside an image)")
        return rec

    @property
    def system_folded(self) -> bool:
        return self.renderer.system_folded

    takes_examples = True

    def check_examples(self) -> None:
        """In-context examples need a chat template and a family that takes several images."""
        reason = ONE_IMAGE.get(self.model_type) or ("its processor has no chat template (no turns)"
                                                    if self.plain_prompt else None)
        if reason:
            raise UserError(f"{self.model_id}: in-context examples need several images in one prompt; {reason}. "
                            "Evaluate this model on the other scenarios (--scenarios without the *_icl* ones)")

    def prompt(self, req: Request) -> str:
        """The exact text the processor tokenises. Raises for an item whose template fails
        (the stage records that item as failed)."""
        return self.renderer.render(req)

    def order_key(self, req: Request, prompt: str):
        """Requests of similar shape batch with less padding: (image pixels, prompt tokens).
        Used by the stage within a scenario when group_by_length is on."""
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(req.image)) as im:
                pixels = im.size[0] * im.size[1]
        except Exception:
            pixels = 0
        return pixels, len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def answer(self, requests: list[Request], prompts: list[str] | None = None) -> list[Result]:
        from emidbench.benchmarks.base import decode_image

        self.load()
        prompts = prompts or [self.prompt(r) for r in requests]
        results: list[Result | None] = [None] * len(requests)
        images = {}
        for i, r in enumerate(requests):
            try:  # the examples' images first, in the order their turns come
                images[i] = [decode_image(e.image, "in-context example image") for e in r.examples] + \
                    [decode_image(r.image, "image")]
            except UserError as e:
                results[i] = Result("", prompts[i], str(e))
        ok = [i for i in range(len(requests)) if results[i] is None]
        if not ok:
            return results
        try:
            texts = self._generate([images[i] for i in ok], [prompts[i] for i in ok])
        except Exception as e:
            if len(ok) > 1:
                self._free_memory()  # the batch may have failed for memory: free it before the items alone
            return self.redo_alone(requests, prompts, ok, results, e)
        for i, text in zip(ok, texts):
            results[i] = Result(text, prompts[i])
        return results

    # --------------------------------------------------------------- internals

    def load(self) -> None:
        """Load the weights (once); `answer` calls it, the stage calls it before the first batch."""
        if self._model is not None:
            return
        import torch
        import transformers

        auto = transformers.AutoModelForMultimodalLM if self.multimodal_lm else transformers.AutoModelForImageTextToText
        kwargs = {"trust_remote_code": True} if self.trust_remote_code else {}
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        if self.device_map:
            try:
                import accelerate  # noqa: F401
            except ImportError:
                raise UserError("--device-map needs accelerate: pip install 'emidbench[gpu]' (or pip install "
                                "accelerate)") from None
            kwargs["device_map"] = self.device_map
        model = load_pretrained(auto, self.path, "an image-text-to-text model",
                                dtype=self.dtype, **kwargs)
        self._model = (model if self.device_map else model.to(self.device)).eval()
        if self.device_map:  # inputs go where the embeddings are
            self.device = str(model.get_input_embeddings().weight.device)
        torch.manual_seed(0)  # only matters with --temperature > 0

    def encode(self, images: list, prompts: list[str]):
        """What the model is fed: the processor's tokenisation as apply_chat_template(tokenize=True)
        does it — no special tokens added to a rendering that starts with BOS already.
        `images`: per prompt, an image or the list of its images in turn order."""
        bos = self.tokenizer.bos_token
        starts = {bool(bos) and p.startswith(bos) for p in prompts}
        if len(starts) > 1:  # never from one template; a batch with both would tokenise half wrong
            raise ValueError("prompts disagree on whether they start with BOS")
        extra = {"add_special_tokens": False} if starts == {True} else {}
        nested = [list(im) if isinstance(im, (list, tuple)) else [im] for im in images]
        return self.processor(images=nested, text=prompts, padding=True, return_tensors="pt", **extra)

    def _generate(self, images: list, prompts: list[str]) -> list[str]:
        import torch

        enc = self.encode(images, prompts).to(self.device, dtype=self.dtype)
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
