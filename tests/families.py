"""Tiny random checkpoints of the open multimodal LLM families the hf backend serves.

Each builder makes the family's REAL transformers classes (config, model, processor,
image/video processor) with tiny sizes, a word-level tokenizer that carries the family's
special tokens (BOS/EOS, image placeholders, turn markers) and a chat template in the
family's own conversation format — including whether it writes BOS itself (Gemma 3,
Mllama, Idefics3, SmolVLM, Mistral3, Pixtral, Aya Vision) or leaves it to the tokenizer
(LLaVA, LLaVA-NeXT) or has none (the Qwen family, InternVL, Phi-4-multimodal). `build(name, path)` saves
model and processor with save_pretrained, so the eval stage loads them back exactly like a
hub checkpoint.

The templates are written here from each family's documented prompt format; only the
structure that decides tokenisation (BOS, where the image goes, turn markers, the
generation prompt, Mllama's refusal of a system message beside an image) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WORDS = ("user assistant model system : ? . , a the is are in of on what how many color shape shapes image "
         "picture describe detail there one two three red green blue yellow circle square triangle left right "
         "top bottom part be brief answer please english").split()


@dataclass
class Family:
    name: str  # the row of the README table
    model_type: str
    bos: str | None  # the tokenizer's BOS token (None: the family has none)
    adds_bos: bool  # the tokenizer prepends BOS when add_special_tokens=True
    eos: str
    pad: str
    specials: list[str]
    template: str | None  # chat template (None: the family ships none — PaliGemma)
    extra_tokens: dict = field(default_factory=dict)  # extra_special_tokens of the tokenizer
    needs: str = ""  # what the family needs beyond the base install (README table)


def _text(expr: str) -> str:
    return (f"{{% if {expr} is string %}}{{{{ {expr} }}}}{{% else %}}"
            f"{{% for c in {expr} %}}{{% if c['type'] == 'text' %}}{{{{ c['text'] }}}}{{% endif %}}{{% endfor %}}"
            "{% endif %}")


def chat_template(*, bos: bool, user: tuple[str, str], assistant: tuple[str, str], generation: str, image: str,
                  system: tuple[str, str] | None = None, default_system: str | None = None,
                  refuse_system_with_image: bool = False) -> str:
    """A family's conversation format as a Jinja chat template. system=None folds the system
    text into the first user turn (Gemma 3, Mllama-style templates without a system role)."""
    t = "{%- set ns = namespace(sys='', has_image=false) -%}"
    t += ("{%- for m in messages -%}{%- if m['content'] is not string -%}{%- for c in m['content'] -%}"
          "{%- if c['type'] == 'image' -%}{%- set ns.has_image = true -%}{%- endif -%}{%- endfor -%}{%- endif -%}"
          "{%- endfor -%}")
    if refuse_system_with_image:
        t += ("{%- if ns.has_image and messages[0]['role'] == 'system' -%}"
              "{{ raise_exception('Prompting with images is incompatible with system messages.') }}{%- endif -%}")
    if bos:
        t += "{{ bos_token }}"
    if default_system is not None and system is not None:
        t += f"{{%- if messages[0]['role'] != 'system' -%}}{system[0]}{default_system}{system[1]}{{%- endif -%}}"
    t += "{%- for m in messages -%}"
    t += "{%- if m['role'] == 'system' -%}"
    if system is not None:
        t += system[0] + _text("m['content']") + system[1]
    else:
        t += "{%- set ns.sys = m['content'] if m['content'] is string else m['content'][0]['text'] -%}"
    t += "{%- elif m['role'] == 'user' -%}" + user[0]
    if system is None:
        t += "{%- if ns.sys -%}{{ ns.sys }}\n\n{%- set ns.sys = '' -%}{%- endif -%}"
    t += ("{%- if m['content'] is string -%}{{ m['content'] }}{%- else -%}{%- for c in m['content'] -%}"
          f"{{%- if c['type'] == 'image' -%}}{image}{{%- elif c['type'] == 'text' -%}}{{{{ c['text'] }}}}{{%- endif -%}}"
          "{%- endfor -%}{%- endif -%}" + user[1])
    t += "{%- elif m['role'] == 'assistant' -%}" + assistant[0] + _text("m['content']") + assistant[1]
    t += "{%- endif -%}{%- endfor -%}"
    t += f"{{%- if add_generation_prompt -%}}{generation}{{%- endif -%}}"
    return t


IM = (("<|im_start|>user\n", "<|im_end|>\n"), ("<|im_start|>assistant\n", "<|im_end|>\n"), "<|im_start|>assistant\n")
IM_SYSTEM = ("<|im_start|>system\n", "<|im_end|>\n")
LLAMA3 = (("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
          ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
          "<|start_header_id|>assistant<|end_header_id|>\n\n")
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
# Qwen2-VL and Qwen2.5-VL share their conversation format and vision tokens.
QWEN2_TEMPLATE = chat_template(bos=False, user=IM[0], assistant=IM[1], generation=IM[2],
                               image="<|vision_start|><|image_pad|><|vision_end|>", system=IM_SYSTEM,
                               default_system="You are a helpful assistant.")
QWEN_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "vision_bos_token": "<|vision_start|>",
               "vision_eos_token": "<|vision_end|>"}

MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]",
                    "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
MISTRAL_TEMPLATE = chat_template(bos=True, user=("[INST]", "[/INST]"), assistant=("", "</s>"), generation="",
                                 image="[IMG]", system=("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"))

FAMILIES = {f.name: f for f in [
    Family("llava", "llava", "<s>", True, "</s>", "<pad>", ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
           chat_template(bos=False, user=("USER: ", " "), assistant=("ASSISTANT: ", "</s>"),
                         generation="ASSISTANT:", image="<image>\n", system=("", " ")),
           {"image_token": "<image>"}),
    Family("llava_next", "llava_next", "<s>", True, "</s>", "<pad>", ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
           chat_template(bos=False, user=("[INST] ", " [/INST]"), assistant=(" ", "</s>"), generation="",
                         image="<image>\n", system=None),
           {"image_token": "<image>"}),
    Family("llava_onevision", "llava_onevision", None, False, "<|im_end|>", "<|endoftext|>",
           ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
           chat_template(bos=False, user=IM[0], assistant=IM[1], generation=IM[2], image="<image>\n",
                         system=IM_SYSTEM), {"image_token": "<image>", "video_token": "<video>"},
           "torchvision"),
    Family("qwen2_vl", "qwen2_vl", None, False, "<|im_end|>", "<|endoftext|>", QWEN_SPECIALS,
           QWEN2_TEMPLATE, QWEN_TOKENS, "torchvision"),
    Family("qwen2_5_vl", "qwen2_5_vl", None, False, "<|im_end|>", "<|endoftext|>", QWEN_SPECIALS,
           QWEN2_TEMPLATE, QWEN_TOKENS, "torchvision"),
    Family("qwen3_vl", "qwen3_vl", None, False, "<|im_end|>", "<|endoftext|>", QWEN_SPECIALS,
           chat_template(bos=False, user=IM[0], assistant=IM[1], generation=IM[2],
                         image="<|vision_start|><|image_pad|><|vision_end|>", system=IM_SYSTEM),
           {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>"}, "torchvision"),
    Family("idefics3", "idefics3", "<|begin_of_text|>", True, "<end_of_utterance>", "<|end_of_text|>",
           ["<|begin_of_text|>", "<|end_of_text|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
            "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
           chat_template(bos=True, user=("User:", "<end_of_utterance>\n"), assistant=("Assistant:", "<end_of_utterance>\n"),
                         generation="Assistant:", image="<image>", system=("System:", "<end_of_utterance>\n"))),
    Family("smolvlm", "smolvlm", "<|im_start|>", False, "<end_of_utterance>", "<|im_end|>",
           ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<image>", "<video>",
            "<fake_token_around_image>", "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
           chat_template(bos=True, user=("User:", "<end_of_utterance>\n"), assistant=("Assistant:", "<end_of_utterance>\n"),
                         generation="Assistant:", image="<image>", system=("System:", "<end_of_utterance>\n")),
           {"image_token": "<image>", "video_token": "<video>", "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
           "torchvision, num2words"),
    Family("gemma3", "gemma3", "<bos>", True, "<eos>", "<pad>",
           ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
            "<end_of_image>", "<image_soft_token>"],
           chat_template(bos=True, user=("<start_of_turn>user\n", "<end_of_turn>\n"),
                         assistant=("<start_of_turn>model\n", "<end_of_turn>\n"), generation="<start_of_turn>model\n",
                         image="<start_of_image>", system=None),
           {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}),
    Family("paligemma", "paligemma", "<bos>", True, "<eos>", "<pad>", ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"],
           None, {"image_token": "<image>"}),
    Family("mllama", "mllama", "<|begin_of_text|>", True, "<|eot_id|>", "<|finetune_right_pad_id|>",
           ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>"],
           chat_template(bos=True, user=LLAMA3[0], assistant=LLAMA3[1], generation=LLAMA3[2], image="<|image|>",
                         system=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
                         refuse_system_with_image=True),
           {"image_token": "<|image|>"}),
    Family("internvl", "internvl", None, False, "<|im_end|>", "<|endoftext|>",
           ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
           chat_template(bos=False, user=IM[0], assistant=IM[1], generation=IM[2], image="<IMG_CONTEXT>\n",
                         system=IM_SYSTEM),
           {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>"}, "torchvision"),
    Family("mistral3", "mistral3", "<s>", True, "</s>", "<pad>", MISTRAL_SPECIALS, MISTRAL_TEMPLATE, {},
           "torchvision"),
    Family("pixtral", "llava", "<s>", True, "</s>", "<pad>", MISTRAL_SPECIALS, MISTRAL_TEMPLATE, {}, "torchvision"),
    Family("phi4_multimodal", "phi4_multimodal", "<|endoftext|>", False, "<|end|>", "<|endoftext|>",
           ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|image|>", "<|audio|>"],
           chat_template(bos=False, user=("<|user|>", "<|end|>"), assistant=("<|assistant|>", "<|end|>"),
                         generation="<|assistant|>", image="<|image|>", system=("<|system|>", "<|end|>")),
           {"image_token": "<|image|>", "audio_token": "<|audio|>"}, "torchvision"),
    Family("aya_vision", "aya_vision", "<BOS_TOKEN>", True, "<|END_OF_TURN_TOKEN|>", "<PAD>",
           ["<PAD>", "<UNK>", "<BOS_TOKEN>", "<EOS_TOKEN>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>",
            "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>", "<image>", "<|START_OF_IMG|>",
            "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "TILE", "TILE_GLOBAL"],
           chat_template(bos=True, user=("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
                         assistant=("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
                         generation="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", image="<image>",
                         system=("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"))),
]}


def build_tokenizer(fam: Family):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(dict.fromkeys(fam.specials + ["[UNK]"]))}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    if fam.adds_bos:  # like Llama/Gemma/Mistral tokenizers: BOS first when special tokens are added
        core.post_processor = processors.TemplateProcessing(single=f"{fam.bos} $A", pair=f"{fam.bos} $A $B",
                                                            special_tokens=[(fam.bos, vocab[fam.bos])])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token=fam.pad, eos_token=fam.eos,
                                  bos_token=fam.bos, extra_special_tokens=dict(fam.extra_tokens), model_max_length=4096)
    tok.add_special_tokens({"additional_special_tokens": [t for t in fam.specials if t not in fam.extra_tokens.values()]},
                           replace_extra_special_tokens=False)
    if fam.template:
        tok.chat_template = fam.template
    return tok


# ----------------------------------------------------------------- tiny sizes

H = 32  # text hidden size
V = 32  # vision hidden size


def _llama(tok, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(**_text_kw(tok), **kw)


def _text_kw(tok) -> dict:
    return dict(vocab_size=len(tok), hidden_size=H, intermediate_size=2 * H, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                initializer_range=0.2)


def _clip(image_size, patch):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=1, num_attention_heads=2,
                            image_size=image_size, patch_size=patch, initializer_range=0.2)


def _siglip(image_size, patch):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image_size, patch_size=patch)


def _ip(name):
    """The family's image processor class (the torchvision one when torchvision imports)."""
    import transformers

    return getattr(transformers, name)


def build_parts(name: str):
    """(model, processor) of a tiny random checkpoint of family `name`."""
    import torch
    import transformers as T

    fam = FAMILIES[name]
    tok = build_tokenizer(fam)
    tid = tok.convert_tokens_to_ids
    torch.manual_seed(0)
    tpl = {"chat_template": fam.template} if fam.template else {}
    if name == "llava":
        ip = _ip("CLIPImageProcessor")(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        proc = T.LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=16, vision_feature_select_strategy="default",
                                num_additional_image_tokens=1, **tpl)
        cfg = T.LlavaConfig(vision_config=_clip(32, 16), text_config=_llama(tok), image_token_index=tid("<image>"),
                            vision_feature_select_strategy="default", vision_feature_layer=-1)
        model = T.LlavaForConditionalGeneration(cfg)
    elif name == "llava_next":
        pin = [[32, 32], [32, 64], [64, 32]]
        ip = _ip("LlavaNextImageProcessor")(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                           image_grid_pinpoints=pin)
        proc = T.LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=16,
                                    vision_feature_select_strategy="default", num_additional_image_tokens=1, **tpl)
        cfg = T.LlavaNextConfig(vision_config=_clip(32, 16), text_config=_llama(tok), image_token_index=tid("<image>"),
                                vision_feature_select_strategy="default", vision_feature_layer=-1,
                                image_grid_pinpoints=pin)
        model = T.LlavaNextForConditionalGeneration(cfg)
    elif name == "llava_onevision":
        pin = [[32, 32], [32, 64], [64, 32]]
        ip = _ip("LlavaOnevisionImageProcessor")(size={"height": 32, "width": 32}, image_grid_pinpoints=pin)
        vp = T.LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32})
        proc = T.LlavaOnevisionProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, num_image_tokens=4,
                                         vision_feature_select_strategy="full", **tpl)
        text = T.Qwen2Config(**_text_kw(tok))
        cfg = T.LlavaOnevisionConfig(vision_config=_siglip(32, 16), text_config=text, image_token_index=tid("<image>"),
                                     video_token_index=tid("<video>"), vision_feature_select_strategy="full",
                                     vision_feature_layer=-1, image_grid_pinpoints=pin)
        model = T.LlavaOnevisionForConditionalGeneration(cfg)
    elif name in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        ip = _ip("Qwen2VLImageProcessor")(min_pixels=32 * 32, max_pixels=64 * 64, patch_size=16 if name == "qwen3_vl" else 14,
                                          merge_size=2, temporal_patch_size=2)
        vp = T.Qwen2VLVideoProcessor() if name != "qwen3_vl" else T.Qwen3VLVideoProcessor()
        pcls = {"qwen2_vl": T.Qwen2VLProcessor, "qwen2_5_vl": T.Qwen2_5_VLProcessor, "qwen3_vl": T.Qwen3VLProcessor}[name]
        proc = pcls(image_processor=ip, tokenizer=tok, video_processor=vp, **tpl)
        ids = dict(image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
                   vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"))
        rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
        if name == "qwen2_vl":
            vision = T.Qwen2VLVisionConfig(depth=1, embed_dim=V, hidden_size=H, num_heads=2, mlp_ratio=2, patch_size=14,
                                           spatial_merge_size=2, temporal_patch_size=2)
            text = T.Qwen2VLTextConfig(**_text_kw(tok), rope_parameters=rope)
            model = T.Qwen2VLForConditionalGeneration(T.Qwen2VLConfig(vision_config=vision.to_dict(),
                                                                      text_config=text.to_dict(), **ids))
        elif name == "qwen2_5_vl":
            vision = T.Qwen2_5_VLVisionConfig(depth=1, hidden_size=V, out_hidden_size=H, intermediate_size=2 * V,
                                              num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                                              window_size=56, fullatt_block_indexes=[0])
            text = T.Qwen2_5_VLTextConfig(**_text_kw(tok), rope_parameters=rope)
            model = T.Qwen2_5_VLForConditionalGeneration(T.Qwen2_5_VLConfig(vision_config=vision.to_dict(),
                                                                             text_config=text.to_dict(), **ids))
        else:
            vision = T.Qwen3VLVisionConfig(depth=1, hidden_size=V, out_hidden_size=H, intermediate_size=2 * V,
                                           num_heads=2, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                                           num_position_embeddings=16, deepstack_visual_indexes=[0])
            text = T.Qwen3VLTextConfig(**_text_kw(tok), head_dim=16,
                                       rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                        "mrope_interleaved": True, "rope_theta": 10000.0})
            model = T.Qwen3VLForConditionalGeneration(T.Qwen3VLConfig(vision_config=vision.to_dict(),
                                                                      text_config=text.to_dict(), **ids))
    elif name in ("idefics3", "smolvlm"):
        ip_name = "Idefics3ImageProcessor" if name == "idefics3" else "SmolVLMImageProcessor"
        ip = _ip(ip_name)(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
        vcls = T.Idefics3VisionConfig if name == "idefics3" else T.SmolVLMVisionConfig
        vision = vcls(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=1, num_attention_heads=2,
                      image_size=32, patch_size=8)
        seq = (32 // 8) ** 2 // 4  # patches / scale_factor**2
        if name == "idefics3":
            proc = T.Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=seq, **tpl)
            cfg = T.Idefics3Config(vision_config=vision.to_dict(), text_config=_llama(tok).to_dict(), scale_factor=2,
                                   image_token_id=tid("<image>"))
            model = T.Idefics3ForConditionalGeneration(cfg)
        else:
            vp = T.SmolVLMVideoProcessor(size={"longest_edge": 32})
            proc = T.SmolVLMProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, image_seq_len=seq, **tpl)
            cfg = T.SmolVLMConfig(vision_config=vision.to_dict(), text_config=_llama(tok).to_dict(), scale_factor=2,
                                  image_token_id=tid("<image>"))
            model = T.SmolVLMForConditionalGeneration(cfg)
    elif name == "gemma3":
        ip = _ip("Gemma3ImageProcessor")(size={"height": 32, "width": 32})
        proc = T.Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=4, **tpl)
        text = T.Gemma3TextConfig(**_text_kw(tok), head_dim=16, sliding_window=64)
        cfg = T.Gemma3Config(vision_config=_siglip(32, 8).to_dict(), text_config=text.to_dict(), mm_tokens_per_image=4,
                             boi_token_index=tid("<start_of_image>"), eoi_token_index=tid("<end_of_image>"),
                             image_token_index=tid("<image_soft_token>"))
        model = T.Gemma3ForConditionalGeneration(cfg)
    elif name == "paligemma":
        ip = _ip("SiglipImageProcessor")(size={"height": 32, "width": 32}, image_seq_length=4)
        ip.image_seq_length = 4
        proc = T.PaliGemmaProcessor(image_processor=ip, tokenizer=tok)
        text = T.GemmaConfig(**_text_kw(tok), head_dim=16)
        cfg = T.PaliGemmaConfig(vision_config=_siglip(32, 16).to_dict(), text_config=text.to_dict(),
                                image_token_index=tid("<image>"), projection_dim=H)
        cfg.vision_config.projection_dim = H
        model = T.PaliGemmaForConditionalGeneration(cfg)
    elif name == "mllama":
        ip = _ip("MllamaImageProcessor")(size={"height": 32, "width": 32}, max_image_tiles=2)
        proc = T.MllamaProcessor(image_processor=ip, tokenizer=tok, **tpl)
        vision = T.MllamaVisionConfig(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=2, num_global_layers=1,
                                      attention_heads=2, image_size=32, patch_size=8, max_num_tiles=2,
                                      vision_output_dim=2 * V, intermediate_layers_indices=[0],
                                      supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
        kw = _text_kw(tok)
        text = T.MllamaTextConfig(**kw, cross_attention_layers=[0])
        cfg = T.MllamaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), image_token_index=tid("<|image|>"))
        model = T.MllamaForConditionalGeneration(cfg)
    elif name == "internvl":
        ip = _ip("GotOcr2ImageProcessor")(size={"height": 32, "width": 32}, crop_to_patches=False)
        vp = T.InternVLVideoProcessor(size={"height": 32, "width": 32})
        proc = T.InternVLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, image_seq_length=4, **tpl)
        vision = T.InternVLVisionConfig(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=1, num_attention_heads=2,
                                        image_size=[32, 32], patch_size=[8, 8])
        cfg = T.InternVLConfig(vision_config=vision.to_dict(), text_config=T.Qwen2Config(**_text_kw(tok)).to_dict(),
                               image_token_id=tid("<IMG_CONTEXT>"), downsample_ratio=0.5)
        model = T.InternVLForConditionalGeneration(cfg)
    elif name in ("mistral3", "pixtral"):
        ip = _ip("PixtralImageProcessor")(size={"longest_edge": 32}, patch_size=8)
        merge = 2 if name == "mistral3" else 1
        proc = T.PixtralProcessor(image_processor=ip, tokenizer=tok, patch_size=8, spatial_merge_size=merge, **tpl)
        vision = T.PixtralVisionConfig(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=8, head_dim=16)
        text = T.MistralConfig(**_text_kw(tok), head_dim=16)
        if name == "mistral3":
            cfg = T.Mistral3Config(vision_config=vision.to_dict(), text_config=text.to_dict(),
                                   image_token_index=tid("[IMG]"), spatial_merge_size=2, vision_feature_layer=-1)
            model = T.Mistral3ForConditionalGeneration(cfg)
        else:
            cfg = T.LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), image_token_index=tid("[IMG]"),
                                vision_feature_select_strategy="full", vision_feature_layer=-1)
            model = T.LlavaForConditionalGeneration(cfg)
    elif name == "aya_vision":
        ip = _ip("GotOcr2ImageProcessor")(size={"height": 32, "width": 32}, crop_to_patches=False)
        proc = T.AyaVisionProcessor(image_processor=ip, tokenizer=tok, patch_size=8, img_size=32, downsample_factor=2,
                                    **tpl)
        text = T.Cohere2Config(**_text_kw(tok), head_dim=16, sliding_window=64, layer_types=["full_attention"])
        cfg = T.AyaVisionConfig(vision_config=_siglip(32, 8).to_dict() | {"model_type": "siglip_vision_model"},
                                text_config=text.to_dict(), image_token_index=tid("<|IMG_PATCH|>"), downsample_factor=2,
                                vision_feature_select_strategy="full", vision_feature_layer=-1)
        model = T.AyaVisionForConditionalGeneration(cfg)
    elif name == "phi4_multimodal":
        # The processor counts image tokens for 448-px crops of 14-px patches (a fixed 256 + 16
        # per image), so the vision tower keeps those sizes; only its width and depth are tiny.
        ip = _ip("Phi4MultimodalImageProcessor")(dynamic_hd=1)
        proc = T.Phi4MultimodalProcessor(image_processor=ip, audio_processor=T.Phi4MultimodalFeatureExtractor(),
                                         tokenizer=tok)
        proc.chat_template = None  # as on the hub: the template is the tokenizer's (tokenizer_config)
        vision = T.Phi4MultimodalVisionConfig(hidden_size=V, intermediate_size=2 * V, num_hidden_layers=2,
                                              num_attention_heads=2, image_size=448, patch_size=14, crop_size=448,
                                              image_token_id=tid("<|image|>"))
        audio = T.Phi4MultimodalAudioConfig(hidden_size=V, intermediate_size=2 * V, num_blocks=1, num_attention_heads=2,
                                            ext_pw_out_channel=V, depthwise_separable_out_channel=V,
                                            nemo_conv_channels=V, audio_token_id=tid("<|audio|>"))
        kw = _text_kw(tok)
        cfg = T.Phi4MultimodalConfig(**kw, original_max_position_embeddings=kw["max_position_embeddings"],
                                     vision_config=vision.to_dict(), audio_config=audio.to_dict())
        model = T.Phi4MultimodalForCausalLM(cfg)
    else:
        raise KeyError(name)
    gen = model.generation_config
    gen.pad_token_id, gen.eos_token_id, gen.bos_token_id = tok.pad_token_id, tok.eos_token_id, tok.bos_token_id
    # Untrained, the model would often emit special tokens first (an empty answer after decoding).
    gen.suppress_tokens = sorted({tid(t) for t in fam.specials} - {tok.eos_token_id})
    gen.min_new_tokens = 1
    return model, proc


def build(name: str, path: Path) -> Path:
    model, proc = build_parts(name)
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path
