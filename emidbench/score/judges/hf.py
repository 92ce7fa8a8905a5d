"""`hf:<id or path>`: a local chat LLM as the judge, through transformers.

AutoTokenizer + AutoModelForCausalLM, the model's own chat template (system message
folded into the user turn when the template has no system role; plain text when the
tokenizer has no template), batched greedy decoding with left padding; the weights load
on the first judgment (a rerun answered from the judge cache never loads them). Deterministic,
so an unparsable reply is not asked again: it is recorded as failed at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from emidbench.common.errors import UserError
from emidbench.score.judges import JUDGES, Judge, JudgeOptions
from emidbench.score.judges.protocol import JudgePrompt

MAX_NEW_TOKENS = 256  # a review is two scores and a few sentences


@JUDGES.register("hf", "hf:<id or path>: a local chat LLM through transformers (batched greedy)")
class HFJudge(Judge):
    deterministic = True  # greedy: asking again gives the same reply, so no retries

    def __init__(self, model: str, options: JudgeOptions = JudgeOptions()):
        from transformers import AutoConfig, AutoTokenizer

        from emidbench.common.hf import load_pretrained, resolve_model, weights_fingerprint

        if not model:
            raise UserError("--judge hf needs a model: hf:<hub id or local path>")
        self.path = resolve_model(model)
        self.model_id = model
        self.device_option, self.dtype_option = options.device, options.dtype
        max_new_tokens = options.max_tokens or MAX_NEW_TOKENS
        self.tok = load_pretrained(AutoTokenizer, self.path, "a tokenizer")
        self.tok.padding_side = "left"  # generation continues every row at the same column
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = None  # loaded on the first judgment: a rerun answered from the cache never needs it
        self.batch_size = options.batch_size
        self.max_new_tokens = max_new_tokens
        local = Path(self.path).expanduser()
        if local.is_dir():
            weights = weights_fingerprint(local)
        else:
            weights = getattr(load_pretrained(AutoConfig, self.path, "a causal language model"), "_commit_hash", "")
        self.identity = f"hf:{model}|{weights}|greedy|max_new_tokens={max_new_tokens}"

    def _load(self):
        if self.model is None:
            from transformers import AutoModelForCausalLM

            from emidbench.common.hf import load_pretrained, pick_device, pick_dtype

            self.device = pick_device(self.device_option)
            self.model = load_pretrained(AutoModelForCausalLM, self.path, "a causal language model",
                                         dtype=pick_dtype(self.dtype_option, self.device)).to(self.device).eval()
        return self.model

    def describe(self) -> dict:
        return {"model": self.model_id, "max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size}

    def _text(self, p: JudgePrompt) -> str:
        if not getattr(self.tok, "chat_template", None):
            return f"{p.system}\n\n{p.content}"
        try:
            return self.tok.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
        except Exception:  # a template without a system role (Gemma, Mistral): fold it into the user turn
            merged = [{"role": "user", "content": f"{p.system}\n\n{p.content}"}]
            return self.tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def judge(self, prompts: list[JudgePrompt]) -> Iterator[tuple[int, str]]:
        import torch

        model = self._load()

        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            enc = self.tok([self._text(p) for p in chunk], return_tensors="pt", padding=True,
                           add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self.tok.pad_token_id)
            texts = self.tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for j, t in enumerate(texts):
                yield start + j, t
