"""`hf:<id or path>`: a local chat LLM as the judge, through transformers (batched,
greedy, left padding, the model's own chat template)."""

from __future__ import annotations

from emidbench.score.judges import JUDGES
from emidbench.score.judges.protocol import JudgePrompt


@JUDGES.register("hf", "hf:<id or path>: a local chat LLM through transformers")
class HFJudge:
    def __init__(self, model: str, batch_size: int = 8, max_new_tokens: int = 256, device: str = "auto", **_):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from emidbench.errors import UserError
        from emidbench.eval.backends.hf import load_pretrained, pick_device, pick_dtype, resolve_model

        if not model:
            raise UserError("--judge hf needs a model: hf:<hub id or path>")
        path = resolve_model(model)
        self.device = pick_device(device)
        self.tok = load_pretrained(AutoTokenizer, path, "a tokenizer")
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = load_pretrained(AutoModelForCausalLM, path, "a causal LM",
                                     dtype=pick_dtype("auto", self.device)).to(self.device).eval()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.identity = f"hf:{model}"

    def judge(self, prompts: list[JudgePrompt]) -> list:
        import torch

        out = []
        for i in range(0, len(prompts), self.batch_size):
            chunk = prompts[i:i + self.batch_size]
            texts = [self.tok.apply_chat_template([{"role": "system", "content": p.system},
                                                   {"role": "user", "content": p.content}],
                                                  tokenize=False, add_generation_prompt=True) for p in chunk]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False)
            out += self.tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return out
