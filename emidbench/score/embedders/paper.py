"""`paper`: the embeddings of Oh et al. (ICML 2025), exactly as their code computes them.

Images: CLIP ViT-B/32 vision model (`openai/clip-vit-base-patch32`), the last entry of
hidden_states (before the post-layernorm), mean over the patch tokens (CLS excluded).
Texts: XLM-RoBERTa base (`xlm-roberta-base`), hidden_states[0] — the embedding layer's
output (word + position embeddings, LayerNorm) — masked mean over tokens with the first
(BOS) token excluded and the final </s> included, truncated at 512 tokens. Only the
embedding module is run: the reference runs all 12 layers to read layer 0; the number
is the same. Rows are L2-normalised.
"""

from __future__ import annotations

import numpy as np

from emidbench.score.embedders import EMBEDDERS

VISION = "openai/clip-vit-base-patch32"
TEXT = "xlm-roberta-base"


@EMBEDDERS.register("paper", "CLIP ViT-B/32 patch means + XLM-R embedding layer, as the paper (any compatible checkpoint)")
class PaperEmbedder:
    name = "paper"

    def __init__(self, vision_encoder: str | None = None, text_encoder: str | None = None, batch_size: int = 32,
                 device: str = "cpu", **_):
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, CLIPVisionModel

        from emidbench.eval.backends.hf import load_pretrained

        self.vision_id = vision_encoder or VISION
        self.text_id = text_encoder or TEXT
        self.device = device
        self.batch_size = batch_size
        self.image_processor = load_pretrained(AutoImageProcessor, self.vision_id, "a CLIP image processor")
        self.vision = load_pretrained(CLIPVisionModel, self.vision_id, "a CLIP vision model").to(device).eval()
        self.tokenizer = load_pretrained(AutoTokenizer, self.text_id, "an XLM-R tokenizer")
        text_model = load_pretrained(AutoModel, self.text_id, "an XLM-R model")
        self.text_embeddings = text_model.embeddings.to(device).eval()
        del text_model
        self.dim = int(self.vision.config.hidden_size)
        if self.dim != int(self.text_embeddings.word_embeddings.embedding_dim):
            from emidbench.errors import UserError

            raise UserError(f"vision ({self.dim}-d) and text encoders have different widths; EMI needs one space")
        self.identity = f"paper:{self.vision_id}:{self.text_id}:{_param_fingerprint(self.vision)}:" \
                        f"{_param_fingerprint(self.text_embeddings)}"
        torch.set_grad_enabled(False)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        import torch

        from emidbench.benchmarks.base import decode_image

        out = []
        for i in range(0, len(images), self.batch_size):
            pil = [decode_image(b, f"image {i + j}") for j, b in enumerate(images[i:i + self.batch_size])]
            pix = self.image_processor(images=pil, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.no_grad():
                hs = self.vision(pixel_values=pix, output_hidden_states=True).hidden_states[-1]
            out.append(hs[:, 1:, :].mean(1).double().cpu().numpy())
        return _normalise(np.concatenate(out))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True, max_length=512,
                                 return_tensors="pt").to(self.device)
            with torch.no_grad():
                h = self.text_embeddings(input_ids=enc["input_ids"])
            mask = enc["attention_mask"].clone()
            mask[:, 0] = 0  # the BOS token <s> is excluded; the final </s> stays
            m = mask.unsqueeze(-1).to(h.dtype)
            out.append(((h * m).sum(1) / m.sum(1).clamp(min=1)).double().cpu().numpy())
        return _normalise(np.concatenate(out))


def _param_fingerprint(module) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().float().numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


def _normalise(a: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(a, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return (a / n).astype(np.float32)
