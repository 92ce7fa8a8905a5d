"""How the bundled mini-clip / mini-xlmr encoder pair is built (the offline demo's embedder).

Stand-ins for the paper's CLIP ViT-B/32 and XLM-R base, at toy size, in their formats:
`mini-clip` is a real `CLIPVisionModel` with its `CLIPImageProcessor`, `mini-xlmr` a
real `XLMRobertaModel` with a tokenizer that adds <s> ... </s> like XLM-R's. The `paper`
embedder loads them by name (`--vision-encoder mini-clip --text-encoder mini-xlmr`) and
pools them exactly as it pools the real ones: the patch-token mean of the vision tower's
last hidden state; the masked mean of the text model's embedding-layer output.

The text side is word-level over the `mini` world's vocabulary in its 7 languages (CJK
characters one token each); any other word is <unk>, so typos and synonyms the world
does not use move a text's vector, as they should. Position embeddings are zero and
frozen: a text's vector is a bag of its words, which is what the embedding layer of
XLM-R mostly is too.
"""

from __future__ import annotations

DIM = 128
IMAGE_SIZE = 64
PATCH = 16
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-R's ids: bos 0, pad 1, eos 2, unk 3
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"


def vocabulary() -> list[str]:
    """Every word of the `mini` world's questions (7 languages), answers and captions."""
    from emidbench.benchmarks import mini

    texts = ["Please answer in English."]
    for kind, args in (("color", mini.SHAPES), ("count", [None]), ("detail", [None]), ("position", mini.POSITIONS)):
        for arg in args:
            texts += [mini.translate(kind, arg, language) for language in mini.LANGUAGES[1:]]
    for n, shapes in ((1, ["circle"]), (2, ["circle", "square"]), (3, list(mini.SHAPES))):
        for color in mini.COLORS:
            for domain in ("mini", "mini_wild"):
                objects = tuple(mini.Obj(sh, color, pos) for sh, pos in zip(shapes, mini.POSITIONS))
                scene = mini.Scene(objects, domain, photo="photo" if domain != "mini" else None)
                for kind, arg in [("count", None), ("detail", None)] + [("color", o.shape) for o in objects] \
                        + [("position", p) for p in mini.POSITIONS[:n]]:
                    texts += list(mini.question(kind, scene, arg))
    split, normalise = _pre_tokenizer(), _normalizer()
    words = set()
    for text in texts:
        text = normalise.normalize_str(text)
        words.update(piece for piece, _ in split.pre_tokenize_str(text))
    return sorted(words)


def _normalizer():
    from tokenizers import normalizers

    return normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])


def _pre_tokenizer():
    """Whitespace, then punctuation; CJK characters one token each (no spaces in Chinese)."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_CJK), behavior="isolated"),
                                    pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])


def xlmr_word_tokenizer(words, normalizer=None, pre_tokenizer=None, mask_token: str | None = None,
                        model_max_length: int = 512):
    """A word-level tokenizer with XLM-R's special-token layout (<s>=0, <pad>=1, </s>=2,
    <unk>=3; `<s> text </s>`), for toy XLM-R checkpoints: the bundled mini-xlmr and the
    random full-size ones of tests and benchmarks. `words`: the rest of the vocabulary in
    order (a mask token, if named, must be among them). Default: lower-cased, split on
    whitespace and punctuation."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizer or normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizer or pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    extra = {"mask_token": mask_token} if mask_token else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=model_max_length, **extra)


def build_tokenizer(words):
    return xlmr_word_tokenizer(sorted(words), _normalizer(), _pre_tokenizer(), model_max_length=128)


def build_text_model(tokenizer, seed: int = 0):
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=DIM, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=DIM, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, type_vocab_size=1)
    model = XLMRobertaModel(config, add_pooling_layer=False)
    with torch.no_grad():
        model.embeddings.position_embeddings.weight.zero_()
        model.embeddings.token_type_embeddings.weight.zero_()
    model.embeddings.position_embeddings.weight.requires_grad_(False)
    model.embeddings.token_type_embeddings.weight.requires_grad_(False)
    return model


def build_image_processor():
    from emidbench.assets import clip_image_processor

    return clip_image_processor(IMAGE_SIZE, do_convert_rgb=True)


def build_vision_model(seed: int = 0):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=DIM, intermediate_size=2 * DIM, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=PATCH)
    return CLIPVisionModel(config)
