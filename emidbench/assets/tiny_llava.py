"""How the bundled tiny-llava is built: tokenizer, processor and model config.

A real `LlavaForConditionalGeneration` (tiny CLIP vision tower + tiny Llama), with a
word-level tokenizer whose unknown words map to [UNK] (any language tokenizes; words the
model never saw carry no meaning to it) and LLaVA-1.5's chat format as the processor's
chat template, so the eval stage prompts it exactly like a hub LLaVA.
"""

from __future__ import annotations

import re

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ message['content'] if message['content'] is string else message['content'][0]['text'] }}{{ ' ' }}"
    "{% elif message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %} "
    "{% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{{ message['content'] if message['content'] is string else message['content'][0]['text'] }}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SPECIALS = ["[PAD]", "[UNK]", "<s>", "</s>", "<image>"]
IMAGE_SIZE = 64
PATCH = 16


def vocabulary() -> list[str]:
    """The `mini` world's English words: every word of its question and answer templates, plus the chat words."""
    from emidbench.benchmarks import mini

    words = {"USER", ":", "ASSISTANT"}
    texts = ["Describe the image in detail.", "How many shapes are in the image?",
             "There is one shape in the image.", "The image shows on a white background over a photograph"]
    for n in mini.NUMBERS.values():
        texts.append(f"There are {n} shapes in the image.")
    for s in mini.SHAPES:
        texts.append(f"What color is the {s}? The {s} is")
    for p in mini.POSITIONS:
        texts.append(f"What is in the {p} of the image? The {p} of the image has a")
    texts += list(mini.COLORS) + list(mini.SHAPES) + [", and a ."]
    for t in texts:
        words.update(re.findall(r"\w+|[^\w\s]+", t))
    return sorted(words)


def build_tokenizer(words, model_max_length: int = 256):
    """A word-level tokenizer over `words` (lower-cased), with `<image>` as the image token."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in sorted({w.lower() for w in words}):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    # Lower-cased: perturbations that change case only (EDA lower-cases) are not unknown words.
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"}, model_max_length=model_max_length,
    )
    fast.add_special_tokens({"additional_special_tokens": []})
    return fast


def build_processor(tokenizer, image_size: int = IMAGE_SIZE, patch: int = PATCH):
    from transformers import LlavaProcessor

    from emidbench.assets import clip_image_processor

    image_processor = clip_image_processor(image_size, do_convert_rgb=True)
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          chat_template=CHAT_TEMPLATE)


def build_model(tokenizer, hidden: int = 128, layers: int = 3, vision_hidden: int = 96, vision_layers: int = 3,
                seed: int = 0, heads: int = 4, image_size: int = IMAGE_SIZE, patch: int = PATCH,
                max_positions: int = 256, initializer_range: float = 0.02, tie_word_embeddings: bool = True):
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden, num_hidden_layers=vision_layers,
                              num_attention_heads=heads, image_size=image_size, patch_size=patch,
                              initializer_range=initializer_range)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       tie_word_embeddings=tie_word_embeddings, initializer_range=initializer_range)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         projector_hidden_act="gelu")
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
