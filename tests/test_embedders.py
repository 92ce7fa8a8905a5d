"""Embedders: the paper pooling against the reference routes on tiny real models, the
offline proxy, and the content-addressed cache."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from emidbench.assets import clip_image_processor
from emidbench.common.errors import UserError
from emidbench.embedders import EMBEDDERS, make_embedder
from emidbench.embedders.cache import EmbeddingCache
from emidbench.embedders.offline import OfflineEmbedder
from tests.helpers import photo_like

WORDS = ("the a cat dog sat on mat is red blue what color two three image picture shows left right "
         "describe in detail there are of and with").split()
TEXTS = ["the cat sat", "What color is the dog on the red mat in the picture?", "",
         "describe the image in detail " * 3, "猫 ça δύο", "two"]


# --------------------------------------------------------------------------- tiny models

def build_tiny_xlmr(path, hidden: int = 16, max_positions: int = 514, seed: int = 0):
    """An untrained XLMRobertaModel with XLM-R's special-token layout (<s>=0, <pad>=1,
    </s>=2, <unk>=3) and a word-level tokenizer, saved like a hub checkpoint."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from emidbench.assets.mini_encoders import xlmr_word_tokenizer

    tok = xlmr_word_tokenizer(WORDS)
    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=2 * hidden, max_position_embeddings=max_positions, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, initializer_range=0.5)
    XLMRobertaModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_vision_config(hidden: int = 16):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                            num_attention_heads=2, image_size=32, patch_size=8, initializer_range=0.5)


def build_tiny_clip_vision(path, hidden: int = 16, seed: int = 0):
    from transformers import CLIPVisionModel

    torch.manual_seed(seed)
    CLIPVisionModel(tiny_vision_config(hidden)).save_pretrained(path)
    clip_image_processor(32).save_pretrained(path)
    return path


def build_tiny_clip_full(path, hidden: int = 16, seed: int = 0):
    """A full CLIPModel (vision + text towers) checkpoint, as openai/clip-vit-base-patch32 is."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(vision_config=tiny_vision_config(hidden).to_dict(),
                        text_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                                         num_attention_heads=2, vocab_size=64, bos_token_id=0, eos_token_id=2,
                                         pad_token_id=1),
                        projection_dim=8)
    model = CLIPModel(config)
    model.save_pretrained(path)
    clip_image_processor(32).save_pretrained(path)
    return path, model


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-encoders")
    return {"vision": build_tiny_clip_vision(root / "clip"), "text": build_tiny_xlmr(root / "xlmr")}


@pytest.fixture(scope="module")
def paper(tiny_dirs):
    emb = make_embedder("paper", vision_encoder=str(tiny_dirs["vision"]), text_encoder=str(tiny_dirs["text"]))
    assert not emb._loaded  # the weights load on first use (a cached run never needs them)
    emb._load()
    return emb


def images(n: int = 5) -> list[bytes]:
    return [photo_like(i, size=(40 + 7 * i, 30 + 5 * i), fmt="PNG" if i % 2 else "JPEG") for i in range(n)]


# --------------------------------------------------------------------------- paper: text

def reference_text_route(model_dir, texts):
    """The reference implementation's route: the full encoder with output_hidden_states,
    hidden_states[0], mask, drop token 0, sum / count, normalise (its code, restated)."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=512)
    mask = enc["attention_mask"].unsqueeze(-1)
    with torch.inference_mode():
        h = model(**enc, output_hidden_states=True).hidden_states[0] * mask
    z = h[:, 1:, :].sum(dim=1) / mask[:, 1:, :].sum(dim=1)
    return torch.nn.functional.normalize(z, p=2, dim=-1).numpy()


def test_text_embedding_layer_equals_full_model_hidden_state_0(paper, tiny_dirs):
    ours = paper.embed_texts(TEXTS)
    ref = reference_text_route(tiny_dirs["text"], TEXTS)
    assert ours.shape == (len(TEXTS), paper.dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_text_pooling_drops_bos_keeps_eos_and_ignores_padding(paper):
    emb = paper.text_embeddings
    ids = paper.tokenizer(["the cat sat"], return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == 0 and ids[0, -1].item() == 2  # <s> ... </s>
    with torch.inference_mode():
        h = emb(input_ids=ids)[0]
    hand = h[1:].mean(0)  # every token but <s>, </s> included
    hand = (hand / hand.norm()).numpy()
    np.testing.assert_allclose(paper.embed_texts(["the cat sat"])[0], hand, atol=1e-6)
    # Batched with longer texts (more padding) or alone: the same vector. XLM-R numbers
    # positions from padding_idx over non-pad tokens, so right padding must not shift them.
    alone = np.stack([paper.embed_texts([t])[0] for t in TEXTS])
    together = paper.embed_texts(TEXTS)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    paper.text_batch_size, old = 2, paper.text_batch_size
    try:
        np.testing.assert_allclose(paper.embed_texts(TEXTS), alone, atol=1e-6)
    finally:
        paper.text_batch_size = old


def test_text_truncates_at_512_tokens(paper, tiny_dirs):
    long_text = " ".join(WORDS[i % len(WORDS)] for i in range(700))
    cut = " ".join(WORDS[i % len(WORDS)] for i in range(510))  # + <s> </s> = 512 tokens
    a, b = paper.embed_texts([long_text, cut])
    assert paper.max_tokens == 512
    ref = reference_text_route(tiny_dirs["text"], [long_text])
    np.testing.assert_allclose(a, ref[0], atol=1e-6)
    # Truncation keeps <s>, the first 510 words and </s>: the 510-word text's tokens.
    np.testing.assert_allclose(a, b, atol=1e-6)
    shorter = paper.embed_texts([" ".join(WORDS[i % len(WORDS)] for i in range(509))])[0]
    assert not np.allclose(a, shorter, atol=1e-6)


# --------------------------------------------------------------------------- paper: images

def hand_clip(model, processor, data: bytes) -> np.ndarray:
    """Patch embedding, CLS and positions, pre-layernorm, each encoder layer, then the
    mean of the patch tokens — no post-layernorm — and L2 normalisation."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    pixels = processor(images=[img], return_tensors="pt")["pixel_values"]
    m = model
    with torch.inference_mode():
        patches = m.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = m.embeddings.class_embedding.expand(1, 1, -1)
        h = torch.cat([cls, patches], dim=1) + m.embeddings.position_embedding.weight.unsqueeze(0)
        h = m.pre_layrnorm(h)
        for layer in m.encoder.layers:
            out = layer(h, attention_mask=None)
            h = out[0] if isinstance(out, tuple) else out
        z = h[0, 1:, :].mean(0)
    return (z / z.norm()).numpy()


def test_image_patch_mean_matches_hand_computation(paper):
    data = images(4)
    ours = paper.embed_images(data)
    hand = np.stack([hand_clip(paper.vision, paper.image_processor, d) for d in data])
    np.testing.assert_allclose(ours, hand, atol=1e-5)
    # The post-layernorm is NOT applied (a different vector if it were).
    with torch.inference_mode():
        pixels = paper.image_processor(images=[Image.open(io.BytesIO(data[0])).convert("RGB")],
                                       return_tensors="pt")["pixel_values"]
        last = paper.vision(pixel_values=pixels).last_hidden_state
        post = paper.vision.post_layernorm(last)[0, 1:].mean(0)
    assert not np.allclose((post / post.norm()).numpy(), ours[0], atol=1e-3)
    # One at a time or in a batch: the same vectors.
    alone = np.stack([paper.embed_images([d])[0] for d in data])
    np.testing.assert_allclose(ours, alone, atol=1e-5)


def test_vision_tower_loads_from_a_full_clip_checkpoint(tmp_path, tiny_dirs):
    path, full = build_tiny_clip_full(tmp_path / "clip-full", seed=3)
    emb = make_embedder("paper", vision_encoder=str(path), text_encoder=str(tiny_dirs["text"]))
    data = images(2)
    ours = emb.embed_images(data)
    hand = np.stack([hand_clip(full.vision_model, emb.image_processor, d) for d in data])
    np.testing.assert_allclose(ours, hand, atol=1e-5)


def test_identity_changes_with_weights(tmp_path, tiny_dirs, paper):
    other = build_tiny_clip_vision(tmp_path / "clip2", seed=1)
    emb2 = make_embedder("paper", vision_encoder=str(other), text_encoder=str(tiny_dirs["text"]))
    assert emb2.identity != paper.identity
    again = make_embedder("paper", vision_encoder=str(tiny_dirs["vision"]), text_encoder=str(tiny_dirs["text"]))
    assert again.identity == paper.identity


def test_paper_embedder_bad_checkpoints(tmp_path, tiny_dirs):
    with pytest.raises(UserError, match="Hugging Face hub"):  # HF_HUB_OFFLINE (conftest), not cached
        make_embedder("paper", vision_encoder="no-such-org/no-such-clip", text_encoder=str(tiny_dirs["text"]))
    with pytest.raises(UserError, match="does not exist"):
        make_embedder("paper", vision_encoder=str(tmp_path / "nothing-here/"), text_encoder=str(tiny_dirs["text"]))
    with pytest.raises(UserError, match="CLIP"):  # an XLM-R folder as the vision tower
        make_embedder("paper", vision_encoder=str(tiny_dirs["text"]), text_encoder=str(tiny_dirs["text"]))
    wide = build_tiny_clip_vision(tmp_path / "clip-wide", hidden=24)
    with pytest.raises(UserError, match="one space"):
        make_embedder("paper", vision_encoder=str(wide), text_encoder=str(tiny_dirs["text"]))


# --------------------------------------------------------------------------- offline

MANY_SCRIPTS = ["What color is the cat?", "Welche Farbe hat die Katze?", "猫是什么颜色的？", "고양이는 무슨 색인가요?",
                "Τι χρώμα έχει η γάτα;", "ما لون القطة؟", "बिल्ली किस रंग की है?", "🐱❓", "", "   "]


def test_offline_embedder_any_script_and_unit_rows():
    emb = make_embedder("offline")
    z = emb.embed_texts(MANY_SCRIPTS)
    assert z.shape == (len(MANY_SCRIPTS), emb.dim) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
    distinct = {tuple(np.round(r, 5)) for r in z[:8]}
    assert len(distinct) == 8
    # Similar texts are closer than unrelated ones.
    a, b, c = emb.embed_texts(["what color is the red car", "what colour is the red car", "zebra 123 ocean"])
    assert a @ b > a @ c + 0.2


def test_offline_images_any_format_and_shift_sensitive():
    emb = make_embedder("offline")
    base = Image.open(io.BytesIO(photo_like(1, size=(64, 48)))).convert("RGB")
    variants = []
    for mode, fmt in (("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("RGB", "JPEG"), ("P", "GIF"), ("CMYK", "JPEG")):
        buf = io.BytesIO()
        base.convert(mode).save(buf, format=fmt)
        variants.append(buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(buf, format="PNG")
    variants.append(buf.getvalue())
    blurred = io.BytesIO()
    base.filter(ImageFilter.GaussianBlur(3)).save(blurred, format="PNG")
    variants.append(blurred.getvalue())
    z = emb.embed_images(variants)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
    assert z[0] @ z[3] > 0.99  # JPEG round trip: nearly the same image
    assert z[0] @ z[-1] < 0.999  # blur moves it
    with pytest.raises(UserError, match="does not decode"):
        emb.embed_images([b"not an image"])


def test_offline_embedder_is_deterministic_across_processes():
    code = ("import numpy as np; from emidbench.embedders import make_embedder; e = make_embedder('offline');"
            "from tests.helpers import photo_like;"
            f"z = np.concatenate([e.embed_texts({MANY_SCRIPTS!r}), e.embed_images([photo_like(0)])]);"
            "import sys; sys.stdout.write(z.tobytes().hex())")
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        outs.append(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                   check=True, cwd=os.path.dirname(__file__)).stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 1000
    here = make_embedder("offline")
    z = np.concatenate([here.embed_texts(MANY_SCRIPTS), here.embed_images([photo_like(0)])])
    assert z.tobytes().hex() == outs[0]


def test_registry_and_unknown_embedder():
    assert {"paper", "offline"} <= set(EMBEDDERS)
    with pytest.raises(UserError, match="unknown embedder"):
        make_embedder("nope")


# --------------------------------------------------------------------------- cache

class Counting:
    """A real embedder that counts what it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.identity = inner, inner.name, inner.dim, inner.identity
        self.images = self.texts = 0

    def embed_images(self, xs):
        self.images += len(xs)
        return self.inner.embed_images(xs)

    def embed_texts(self, xs):
        self.texts += len(xs)
        return self.inner.embed_texts(xs)


def test_cache_second_run_embeds_nothing(tmp_path):
    texts = MANY_SCRIPTS + MANY_SCRIPTS[:3]  # repeats are embedded once
    imgs = images(3) + images(1)
    first = Counting(make_embedder("offline"))
    c1 = EmbeddingCache(tmp_path, first)
    t1, i1 = c1.texts(texts), c1.images(imgs)
    assert (first.texts, first.images) == (len(MANY_SCRIPTS), 3) and c1.computed == len(MANY_SCRIPTS) + 3
    second = Counting(make_embedder("offline"))
    c2 = EmbeddingCache(tmp_path, second)
    t2, i2 = c2.texts(list(reversed(texts))), c2.images(imgs)
    assert (second.texts, second.images, c2.computed) == (0, 0, 0)
    np.testing.assert_array_equal(t2, t1[::-1])
    np.testing.assert_array_equal(i2, i1)
    np.testing.assert_array_equal(t1, make_embedder("offline").embed_texts(texts))
    # One new text: only it is embedded.
    c2.texts(texts + ["something new"])
    assert second.texts == 1
    # Another embedder (another identity) has its own folder.
    other = Counting(OfflineEmbedder(dim=64))
    assert EmbeddingCache(tmp_path, other).texts(texts).shape == (len(texts), 64) and other.texts == len(MANY_SCRIPTS)


def test_cache_survives_a_killed_writer(tmp_path):
    emb = make_embedder("offline")
    cache = EmbeddingCache(tmp_path, emb)
    good = cache.texts(["a", "b"])
    # A writer killed after writing vectors but before indexing them, and one killed mid index line.
    with open(cache.vec_path, "ab") as f:
        f.write(np.full((3, emb.dim), 7.0, np.float32).tobytes())
    with open(cache.idx_path, "ab") as f:
        f.write(b'{"k": "torn')
    again = EmbeddingCache(tmp_path, emb)
    np.testing.assert_array_equal(again.texts(["a", "b"]), good)
    fresh = again.texts(["c"])
    np.testing.assert_array_equal(fresh, emb.embed_texts(["c"]))
    third = EmbeddingCache(tmp_path, emb)
    np.testing.assert_array_equal(third.texts(["a", "b", "c"]), np.concatenate([good, fresh]))
    assert third.vec_path.stat().st_size == 3 * emb.dim * 4  # the orphan rows were overwritten


def test_a_damaged_cache_index_is_one_clear_error(tmp_path):
    emb = make_embedder("offline")
    cache = EmbeddingCache(tmp_path, emb)
    cache.texts(["a"])
    with open(cache.idx_path, "a", encoding="utf-8") as f:
        f.write('{"x": 1}\n')  # a whole line, but not an index entry
    with pytest.raises(UserError, match=r"index.jsonl:2: embedding cache is damaged; delete"):
        EmbeddingCache(tmp_path, emb).texts(["a", "b"])


class Broken:
    name, dim, identity = "broken", 4, "broken-v1"

    def embed_texts(self, xs):
        out = np.ones((len(xs), 4), np.float32)
        out[-1, 0] = np.nan
        return out

    def embed_images(self, xs):
        return np.ones((len(xs), 3), np.float32)  # wrong width


def test_cache_rejects_nan_and_wrong_shapes(tmp_path):
    cache = EmbeddingCache(tmp_path, Broken())
    with pytest.raises(UserError, match="NaN"):
        cache.texts(["x", "y"])
    with pytest.raises(UserError, match="shape"):
        cache.images(images(1))
    assert cache.rows == {}
