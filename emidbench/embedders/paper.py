"""`paper`: the embeddings of Oh et al. (ICML 2025), computed as their code computes them.

Images: a CLIP vision tower (default `openai/clip-vit-base-patch32`; a CLIPVisionModel
checkpoint or a full CLIPModel one), preprocessed by the checkpoint's own image
processor; the last entry of hidden_states (the encoder output, BEFORE the
post-layernorm), mean over the patch tokens with CLS excluded.

Texts: XLM-RoBERTa (default `xlm-roberta-base`), hidden_states[0] = the output of the
embedding module (word + position + token-type embeddings, LayerNorm; no dropout in
eval mode); masked mean over the tokens with the first (BOS) token excluded and the
final </s> included; truncation at 512 tokens. Only the embedding module is run — the
reference runs all 12 layers to read layer 0; the number is the same (tested).
Padding is on the right, so a text's position ids (counted from padding_idx + 1 over
its non-pad tokens) and so its vector do not depend on what it is batched with.

Every row is L2-normalised, in float32 as the reference does it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from emidbench.common.errors import UserError
from emidbench.embedders import EMBEDDERS, Embedder, EmbedderOptions

VISION = "openai/clip-vit-base-patch32"
TEXT = "xlm-roberta-base"
MAX_TOKENS = 512
IMAGE_BATCH, TEXT_BATCH = 32, 64  # inputs per forward pass (the vectors do not depend on them)
POOLING_VERSION = "paper-v1"  # bump when the pooling changes: it invalidates cached vectors


@EMBEDDERS.register("paper", "CLIP ViT-B/32 patch mean + XLM-R embedding layer, as the paper (any compatible checkpoint)")
class PaperEmbedder(Embedder):
    """The configs are read at once (widths, a clear error for a missing or wrong
    checkpoint); the weights load on the first embed call, so a run answered from the
    embedding cache never loads them. The identity is a fingerprint of the two checkpoint
    folders (weights sampled, every small file whole: tokenizer, image preprocessing)."""

    name = "paper"

    def __init__(self, options: EmbedderOptions = EmbedderOptions()):
        """options.images_only: load the vision encoder alone (the shift stage's easy/hard
        split embeds images only; it should not need, or download, an XLM-R)."""
        from transformers import AutoConfig

        from emidbench.common.hf import load_pretrained, quiet_loading, resolve_model

        images_only = options.images_only
        self.vision_id = options.vision_encoder or VISION
        self.text_id = options.text_encoder or TEXT
        # bundled names (mini-clip, mini-xlmr) -> their folders; the names stay in the records
        self.images_only = images_only
        self._vision_src = resolve_model(self.vision_id)
        self._text_src = None if images_only else resolve_model(self.text_id)
        self.device_option = options.device
        self.batch_size = IMAGE_BATCH
        self.text_batch_size = TEXT_BATCH
        self._loaded = False
        with quiet_loading(warnings=True):
            vcfg = load_pretrained(AutoConfig, self._vision_src, "a CLIP checkpoint")
            tcfg = None if images_only else load_pretrained(AutoConfig, self._text_src, "an XLM-R checkpoint")
        if vcfg.model_type not in ("clip", "clip_vision_model"):
            raise UserError(f"--vision-encoder {self.vision_id} is a {vcfg.model_type!r} checkpoint; the paper "
                            "embedder needs a CLIP one (CLIPModel or CLIPVisionModel)")
        self.dim = int(vcfg.vision_config.hidden_size if vcfg.model_type == "clip" else vcfg.hidden_size)
        text_dim = self.dim if images_only else int(getattr(tcfg, "hidden_size", 0) or 0)
        if self.dim != text_dim:
            raise UserError(f"the vision encoder gives {self.dim}-d and the text encoder {text_dim}-d vectors; "
                            "EMI needs images and texts in one space of one width")
        sources = [self._vision_src] + ([] if images_only else [self._text_src])
        folders = [_local_folder(s) for s in sources]
        if None in folders:  # a hub id not in the local cache yet: loading downloads it
            self._load()
            folders = [_local_folder(s) for s in sources]
        from emidbench.common.hf import weights_fingerprint

        parts = [POOLING_VERSION] + [weights_fingerprint(f) if f else "unresolved" for f in folders]
        self.identity = f"paper:{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:24]}"

    def _load(self) -> None:
        if self._loaded:
            return
        import torch
        from transformers import AutoImageProcessor, CLIPVisionModel

        from emidbench.common.hf import load_pretrained, pick_device, quiet_loading

        self.device = pick_device(self.device_option)
        with quiet_loading(warnings=True):
            self.image_processor = load_pretrained(AutoImageProcessor, self._vision_src, "a CLIP image processor")
            vision, info = load_pretrained(CLIPVisionModel, self._vision_src, "a CLIP vision model",
                                           dtype=torch.float32, output_loading_info=True)
            _check_loaded(self.vision_id, info, "")
        self.vision = vision.to(self.device).eval()
        if not self.images_only:
            self._load_text()
        self._loaded = True

    def _load_text(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from emidbench.common.hf import load_pretrained, quiet_loading

        with quiet_loading(warnings=True):
            self.tokenizer = load_pretrained(AutoTokenizer, self._text_src, "an XLM-R tokenizer")
            text_model, info = load_pretrained(AutoModel, self._text_src, "an XLM-R model", dtype=torch.float32,
                                               output_loading_info=True)
            _check_loaded(self.text_id, info, "embeddings.")
        if not hasattr(text_model, "embeddings") or not hasattr(text_model.embeddings, "word_embeddings"):
            raise UserError(f"--text-encoder {self.text_id} ({type(text_model).__name__}) has no embedding module "
                            "to read hidden_states[0] from; use an XLM-R compatible checkpoint")
        self.tokenizer.padding_side = "right"  # the BOS is then token 0 of every row
        self.text_embeddings = text_model.embeddings.to(self.device).eval()
        max_pos = getattr(text_model.config, "max_position_embeddings", None)
        del text_model  # the 12 layers are never run
        # XLM-R numbers positions from padding_idx + 1, so its 514 positions hold 512 tokens.
        offset = getattr(self.text_embeddings, "padding_idx", None)
        usable = max_pos - (offset + 1 if offset is not None else 0) if max_pos else MAX_TOKENS
        self.max_tokens = min(MAX_TOKENS, usable)

    def describe(self) -> dict:
        return {"vision_encoder": self.vision_id, "text_encoder": None if self.images_only else self.text_id,
                "dim": self.dim,
                "pooling": POOLING_VERSION}

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        self._load()
        import torch
        import torch.nn.functional as F

        from emidbench.common.images import decode_image

        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            pil = [decode_image(b, f"image {start + j}") for j, b in enumerate(chunk)]
            pixels = self.image_processor(images=pil, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                hs = self.vision(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
                z = F.normalize(hs[:, 1:, :].mean(dim=1).float(), p=2, dim=-1)
            out.append(z.cpu().numpy())
        return np.concatenate(out)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if self.images_only:
            raise ValueError("this paper embedder was built with images_only=True")
        self._load()
        import torch
        import torch.nn.functional as F

        result = np.zeros((len(texts), self.dim), np.float32)
        # Similar lengths together: less padding to push through the LayerNorm.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.text_batch_size):
            idx = order[start:start + self.text_batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_tokens, return_tensors="pt")
            kwargs = {"input_ids": enc["input_ids"].to(self.device)}
            if "token_type_ids" in enc:
                kwargs["token_type_ids"] = enc["token_type_ids"].to(self.device)
            with torch.inference_mode():
                h = self.text_embeddings(**kwargs)
                mask = enc["attention_mask"].to(self.device).unsqueeze(-1).to(h.dtype)
                summed = (h * mask)[:, 1:, :].sum(dim=1)  # token 0 (BOS) left out, </s> kept
                z = F.normalize(summed / mask[:, 1:, :].sum(dim=1).clamp(min=1), p=2, dim=-1)
            result[idx] = z.float().cpu().numpy()
        return result


def _check_loaded(model_id: str, info: dict, prefix: str) -> None:
    """A checkpoint that lacks weights we use would be silently random-initialised."""
    missing = [k for k in (info or {}).get("missing_keys", []) if k.startswith(prefix)]
    if missing:
        raise UserError(f"{model_id}: the checkpoint lacks {len(missing)} weights the embedder needs "
                        f"(e.g. {sorted(missing)[0]}); is it the right kind of model?")


def _local_folder(model_id: str):
    """The folder from_pretrained reads `model_id` from: itself when local, else its
    snapshot in the Hugging Face cache (None when not downloaded yet)."""
    from pathlib import Path

    path = Path(model_id).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(model_id, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None
