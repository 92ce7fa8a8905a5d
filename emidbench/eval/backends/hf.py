"""Backend `hf`: any image-text-to-text model transformers loads (LLaVA-1.5/NeXT,
Qwen2-VL, Idefics, SmolVLM, the bundled tiny-llava, your checkpoint) through
AutoProcessor + AutoModelForImageTextToText and the processor's own chat template.

Batched greedy generation with left padding (a batch gives the answers batch size 1
gives). The processor and config load at once (they decide the prompt and the cache
key); the weights load on the first batch, so a rerun answered from the cache never
loads them. The helpers `resolve_model`, `load_pretrained`, `pick_device` and
`pick_dtype` are shared with the score stage's embedders and judges.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from emidbench import hub
from emidbench.errors import UserError, did_you_mean
from emidbench.eval.backends import BACKENDS, Request, Result

BIG_FILE = 64 * 2**20  # above this, weights are fingerprinted by sampled blocks, not read whole
SAMPLE = 2**20


def resolve_model(model: str) -> str:
    """`tiny-llava` -> the bundled folder when it is there; anything else as given."""
    try:
        from emidbench.assets import bundled_model_path
    except ImportError:
        return model
    path = bundled_model_path(model)
    return str(path) if path is not None else model


def bundled_names() -> set:
    try:
        from emidbench.assets import BUNDLED
    except ImportError:
        return set()
    return set(BUNDLED)


def looks_like_path(model_id: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else with separators is a path."""
    s = str(model_id)
    return (s.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in s or s.count("/") >= 2
            or s.endswith("/") or (len(s) > 1 and s[1] == ":"))


def check_local(model_id: str) -> None:
    path = Path(model_id).expanduser()
    if path.is_file():
        raise UserError(f"model path {model_id} is a file; pass the folder that holds config.json")
    if not path.exists() and looks_like_path(model_id):
        raise UserError(f"model path {model_id} does not exist")


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


@contextlib.contextmanager
def _quiet_loading():
    """No tqdm bars from transformers while loading (they would tear the rich progress bar)."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()


def load_pretrained(loader, model_id: str, what: str, **kwargs):
    """`loader.from_pretrained(model_id)` with one clear line for the ways it fails: a path
    that does not exist, the hub out of reach (or HF_HUB_OFFLINE set) and no cached copy,
    an unknown or gated repository, a checkpoint of the wrong kind. A hub id is first
    checked by `emidbench.hub.prepare`: out of reach, a cached copy loads without the
    network and anything else fails at once (no retries)."""
    check_local(model_id)
    local = Path(model_id).expanduser().is_dir()
    known = bundled_names()
    cache_only = None if local else hub.prepare(model_id, known=known)
    if cache_only:
        kwargs = {**kwargs, "local_files_only": True}
    try:
        with _quiet_loading():
            return loader.from_pretrained(str(Path(model_id).expanduser()) if local else model_id, **kwargs)
    except ValueError as e:
        if "Unrecognized" in str(e):
            raise UserError(f"{model_id} is not {what} ({_first_line(e)})") from None
        raise UserError(f"cannot load {what} from {model_id}: {_first_line(e)}") from None
    except OSError as e:
        if local:
            raise UserError(f"cannot load {what} from {model_id}: {_first_line(e)}") from None
        if cache_only:  # offline: the cache lacks it (or a file of it)
            raise hub.not_reachable(model_id, known=known, why=cache_only) from None
        names = {type(c).__name__ for c in _chain(e)}
        if "GatedRepoError" in names:
            raise UserError(f"{model_id} is gated on the Hugging Face hub: accept its terms on the model page "
                            "and log in (`hf auth login`), or pass a local path") from None
        if "RepositoryNotFoundError" in names:
            raise UserError(f"{model_id} is neither a local folder nor a model on the Hugging Face hub"
                            f"{did_you_mean(model_id, known)} (private? log in with `hf auth login`)") from None
        if "EntryNotFoundError" in names and "LocalEntryNotFoundError" not in names:
            raise UserError(f"cannot load {what} from {model_id}: {_first_line(e)}") from None
        raise hub.not_reachable(model_id, known=known) from None


def pick_device(device: str) -> str:
    """`auto`: the GPU when CUDA is there, else cpu. `cuda` means cuda:LOCAL_RANK (one GPU per
    torchrun rank; LOCAL_RANK is 0 outside torchrun)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # under torchrun each rank takes its own GPU
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0) or 0)}"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown --device {device!r} (auto, cpu, cuda, cuda:1, mps, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    return device


def pick_dtype(dtype: str, device: str):
    """`auto`: bf16 on a GPU that supports it, else fp16 on GPU; fp32 on CPU."""
    import torch

    if dtype == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    try:
        return names[dtype]
    except KeyError:
        raise UserError(f"unknown --dtype {dtype!r} (auto, float32, float16, bfloat16)") from None


def weights_fingerprint(folder: Path) -> str:
    """A content hash of a local checkpoint folder: small files whole, big weight files by
    size plus three sampled blocks (cheap on 10-GB shards, and changes when the weights are
    retrained in place, so the response cache never serves a stale answer)."""
    h = hashlib.sha256()
    # Top-level files only: from_pretrained reads nothing else (a training folder's
    # checkpoint-*/ subfolders are not this model).
    for f in sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")):
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= BIG_FILE:
                h.update(fh.read())
            else:
                for offset in (0, size // 2, size - SAMPLE):
                    fh.seek(offset)
                    h.update(fh.read(SAMPLE))
    return h.hexdigest()[:20]


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
                results[ok[0]] = Result("", prompts[ok[0]], f"{type(e).__name__}: {_first_line(e)}")
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
