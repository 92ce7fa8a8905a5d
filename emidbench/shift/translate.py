"""Questions in other languages.

From (a) the benchmark's own translations (Sample.translations: the released sets and
`mini` carry them), else (b) a transformers translation checkpoint (`--translator`), else
(c) the language is skipped with a printed note. Translated questions get
" Please answer in English." appended, as in the paper.
"""

from __future__ import annotations

from emidbench.errors import UserError

SUFFIX = " Please answer in English."

# Language -> codes used by multilingual checkpoints (M2M100 / mBART-50 / NLLB).
CODES = {
    "German": {"m2m": "de", "mbart": "de_DE", "nllb": "deu_Latn"},
    "Chinese": {"m2m": "zh", "mbart": "zh_CN", "nllb": "zho_Hans"},
    "Korean": {"m2m": "ko", "mbart": "ko_KR", "nllb": "kor_Hang"},
    "Greek": {"m2m": "el", "mbart": "el_GR", "nllb": "ell_Grek"},
    "Arabic": {"m2m": "ar", "mbart": "ar_AR", "nllb": "arb_Arab"},
    "Hindi": {"m2m": "hi", "mbart": "hi_IN", "nllb": "hin_Deva"},
}


class Translator:
    """English -> language with any seq2seq checkpoint, greedy, batched. A single-pair
    checkpoint (e.g. Helsinki-NLP/opus-mt-en-de) is used as it is; a multilingual one
    gets the target language's code as its forced first token."""

    def __init__(self, model_id: str, batch_size: int = 16, max_new_tokens: int = 128):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            self.tok = AutoTokenizer.from_pretrained(model_id)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(model_id).eval()
        except OSError as e:
            raise UserError(f"cannot load translator {model_id!r} ({str(e).splitlines()[0][:160]}); "
                            "offline, pass a local path") from None
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def _target_token(self, language: str):
        for style in ("nllb", "mbart", "m2m"):
            code = CODES.get(language, {}).get(style)
            for tok in (code, f"__{code}__"):
                if tok and tok in self.tok.get_vocab():
                    return self.tok.convert_tokens_to_ids(tok)
        return None

    def __call__(self, texts: list[str], language: str) -> list[str]:
        import torch

        out = []
        forced = self._target_token(language)
        for i in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[i:i + self.batch_size], return_tensors="pt", padding=True, truncation=True)
            kwargs = {"forced_bos_token_id": forced} if forced is not None else {}
            with torch.no_grad():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                          **kwargs)
            out += [t.strip() for t in self.tok.batch_decode(gen, skip_special_tokens=True)]
        return out
