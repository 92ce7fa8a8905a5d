"""Loading transformers checkpoints the same way everywhere (the eval backend, the
embedders, the translator, the hf judge): a bundled name, a local folder or a hub id;
one clear line for each way loading fails (no traceback, no half a minute of hub
retries offline); device and dtype names; a content fingerprint of a local checkpoint
for cache keys."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from emidbench.common import hub
from emidbench.common.errors import UserError, did_you_mean, exception_chain, first_line

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


@contextlib.contextmanager
def quiet_loading(warnings: bool = False):
    """No tqdm bars from transformers while loading (they would tear the rich progress
    bar); with warnings=True also no load reports or warnings (a caller that checks what
    loaded itself and says it in one clear line)."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if warnings:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if not was_disabled:
            hf_logging.enable_progress_bar()


def load_pretrained(loader, model_id: str, what: str, **kwargs):
    """`loader.from_pretrained(model_id)` with one clear line for the ways it fails: a path
    that does not exist, the hub out of reach (or HF_HUB_OFFLINE set) and no cached copy,
    an unknown or gated repository, a checkpoint of the wrong kind. A hub id is first
    checked by `emidbench.common.hub.prepare`: out of reach, a cached copy loads without the
    network and anything else fails at once (no retries)."""
    check_local(model_id)
    local = Path(model_id).expanduser().is_dir()
    known = bundled_names()
    cache_only = None if local else hub.prepare(model_id, known=known)
    if cache_only:
        kwargs = {**kwargs, "local_files_only": True}
    try:
        with quiet_loading():
            return loader.from_pretrained(str(Path(model_id).expanduser()) if local else model_id, **kwargs)
    except ImportError as e:  # a processor/model that needs an optional package (torchvision, num2words, ...)
        raise UserError(f"cannot load {what} from {model_id}: {missing_dependency(e)}") from None
    except ValueError as e:
        if "Unrecognized" in str(e):
            raise UserError(f"{model_id} is not {what} ({first_line(e)})") from None
        raise UserError(f"cannot load {what} from {model_id}: {first_line(e)}") from None
    except OSError as e:
        if local:
            raise UserError(f"cannot load {what} from {model_id}: {first_line(e)}") from None
        if cache_only:  # offline: the cache lacks it (or a file of it)
            raise hub.not_reachable(model_id, known=known, why=cache_only) from None
        names = {type(c).__name__ for c in exception_chain(e)}
        if "GatedRepoError" in names:
            raise UserError(f"{model_id} is gated on the Hugging Face hub: accept its terms on the model page "
                            "and log in (`hf auth login`), or pass a local path") from None
        if "RepositoryNotFoundError" in names:
            raise UserError(f"{model_id} is neither a local folder nor a model on the Hugging Face hub"
                            f"{did_you_mean(model_id, known)} (private? log in with `hf auth login`)") from None
        if "EntryNotFoundError" in names and "LocalEntryNotFoundError" not in names:
            raise UserError(f"cannot load {what} from {model_id}: {first_line(e)}") from None
        raise hub.not_reachable(model_id, known=known) from None


# Install lines for the optional packages a model family's classes import.
INSTALL_LINES = {
    "torchvision": "install torchvision as the pair built for your torch, e.g. pip install torch==2.14.1 "
                   "torchvision==0.29.1 (README, Install)",
    "num2words": "pip install num2words",
    "timm": "pip install timm",
    "flash_attn": "pip install flash-attn --no-build-isolation (a CUDA machine)",
    "accelerate": "pip install accelerate",
}


def missing_dependency(e: ImportError) -> str:
    """One line: which package is missing and the line that installs it."""
    import re

    text = str(e)
    name = getattr(e, "name", None)
    match = re.search(r"requires the (\S+) library", text)
    if match:
        name = match.group(1)
    key = (name or "").lower().replace("-", "_").split(".")[0]
    if key in INSTALL_LINES:
        return f"it needs {key}: {INSTALL_LINES[key]}"
    if name:
        return f"it needs the {name} package: pip install {name} ({first_line(e)})"
    return f"a package is missing: {first_line(e)}"


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


DTYPES = ("auto", "float32", "fp32", "float16", "fp16", "bfloat16", "bf16")


def check_dtype(dtype: str) -> None:
    """A --dtype name pick_dtype knows, checked before anything is loaded."""
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r} (auto, float32, float16, bfloat16)")


def pick_dtype(dtype: str, device: str):
    """`auto`: bf16 on a GPU that supports it, else fp16 on GPU; fp32 on CPU."""
    import torch

    check_dtype(dtype)
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
