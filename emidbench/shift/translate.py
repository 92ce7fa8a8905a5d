"""Questions in other languages.

Where a language comes from, in order: (a) the benchmark's own translations
(Sample.translations: the released sets and `mini` carry them); (b) a transformers
seq2seq translation checkpoint (`--translator`); (c) nowhere: the language is skipped
with a printed note, recorded in the manifest. Translated questions get
" Please answer in English." appended, as in the paper.

`--translator` takes a hub id or a local path (`AutoTokenizer` + `AutoModelForSeq2SeqLM`,
greedy decoding), or one per language: `German=PATH_A,Korean=PATH_B`.

- A single-pair checkpoint (e.g. Helsinki-NLP/opus-mt-en-de) has no target-language
  codes; it is used as it is, and so can serve one language only (asking it for two is
  an error rather than two copies of the same language).
- A multi-target checkpoint is recognised by the language-code tokens in its vocabulary
  (LANGUAGE_CODES below): NLLB (`deu_Latn`) and mBART-50 (`de_DE`) and M2M100 (`__de__`)
  get the target code as the forced first generated token and `src_lang` set to English;
  multi-target Marian models (opus-mt-en-mul, `>>deu<<`) get the code prefixed to the
  source text. A language the table has no code for is an error, not a guess.
- T5-style checkpoints (model_type "t5") get the task prefix "translate English to <L>: ".
"""

from __future__ import annotations

import re

from emidbench.common.errors import UserError

SUFFIX = " Please answer in English."
ENGLISH = "English"

# Language -> its code in each multi-target convention (None: the convention lacks it).
LANGUAGE_CODES: dict[str, dict[str, list[str]]] = {
    #            NLLB-200        mBART-50   M2M100  Marian (opus-mt multi-target)
    "English": {"nllb": ["eng_Latn"], "mbart": ["en_XX"], "m2m": ["en"], "marian": ["eng"]},
    "German": {"nllb": ["deu_Latn"], "mbart": ["de_DE"], "m2m": ["de"], "marian": ["deu"]},
    "Chinese": {"nllb": ["zho_Hans"], "mbart": ["zh_CN"], "m2m": ["zh"], "marian": ["cmn_Hans", "zho"]},
    "Korean": {"nllb": ["kor_Hang"], "mbart": ["ko_KR"], "m2m": ["ko"], "marian": ["kor"]},
    "Greek": {"nllb": ["ell_Grek"], "mbart": [], "m2m": ["el"], "marian": ["ell"]},  # not in mBART-50
    "Arabic": {"nllb": ["arb_Arab"], "mbart": ["ar_AR"], "m2m": ["ar"], "marian": ["ara"]},
    "Hindi": {"nllb": ["hin_Deva"], "mbart": ["hi_IN"], "m2m": ["hi"], "marian": ["hin"]},
    "French": {"nllb": ["fra_Latn"], "mbart": ["fr_XX"], "m2m": ["fr"], "marian": ["fra"]},
    "Spanish": {"nllb": ["spa_Latn"], "mbart": ["es_XX"], "m2m": ["es"], "marian": ["spa"]},
    "Japanese": {"nllb": ["jpn_Jpan"], "mbart": ["ja_XX"], "m2m": ["ja"], "marian": ["jpn"]},
    "Russian": {"nllb": ["rus_Cyrl"], "mbart": ["ru_RU"], "m2m": ["ru"], "marian": ["rus"]},
}
STYLES = ("nllb", "mbart", "m2m", "marian")


def _token(style: str, code: str) -> str:
    return {"m2m": f"__{code}__", "marian": f">>{code}<<"}.get(style, code)


def parse_translator(spec: str | None) -> dict[str | None, str]:
    """'PATH' -> {None: PATH}; 'German=A,Korean=B' -> {'German': A, 'Korean': B}."""
    if not spec:
        return {}
    parts = [p.strip() for p in str(spec).split(",")]
    if all(re.fullmatch(r"[A-Z][A-Za-z ]*=\S.*", p) for p in parts):
        return {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in parts}
    return {None: str(spec)}


class Translator:
    """English -> one or more languages with one seq2seq checkpoint, greedy, batched."""

    def __init__(self, model_id: str, batch_size: int = 16, max_new_tokens: int = 256):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        from emidbench.common.hf import load_pretrained

        # as every model: a missing path, the hub out of reach, the wrong kind -> one line
        try:
            self.tok = load_pretrained(AutoTokenizer, model_id, "a translation tokenizer")
            self.model = load_pretrained(AutoModelForSeq2SeqLM, model_id, "a seq2seq translation model").eval()
        except KeyError as e:
            raise UserError(f"cannot load translator {model_id!r} ({type(e).__name__}: {e}); pass a seq2seq "
                            "translation checkpoint") from None
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        vocab = self.tok.get_vocab()
        self.style = next((s for s in STYLES if any(_token(s, c) in vocab for codes in LANGUAGE_CODES.values()
                                                    for c in codes[s])), None)
        self._vocab = vocab
        self.t5 = getattr(self.model.config, "model_type", "") == "t5"

    @property
    def multi_target(self) -> bool:
        return self.style is not None

    def check_languages(self, languages: list[str]) -> None:
        """Refuse, before any work, what this checkpoint cannot do."""
        if not self.multi_target and not self.t5 and len(languages) > 1:
            raise UserError(f"translator {self.model_id!r} has no target-language codes (a single-pair model) "
                            f"but {len(languages)} languages need it ({', '.join(languages)}); pass one model per "
                            "language as --translator German=A,Korean=B or a multi-target model (NLLB, M2M100, mBART-50)")
        for lang in languages:
            if self.multi_target and self._code_token(lang) is None:
                raise UserError(f"translator {self.model_id!r}: no {self.style} language code known for {lang!r} "
                                f"(known: {', '.join(sorted(LANGUAGE_CODES))})")

    def _code_token(self, language: str) -> str | None:
        for code in LANGUAGE_CODES.get(language, {}).get(self.style or "", []):
            if _token(self.style, code) in self._vocab:
                return _token(self.style, code)
        return None

    def __call__(self, texts: list[str], language: str) -> list[str]:
        import torch

        self.check_languages([language])
        kwargs: dict = {}
        prefix = f"translate English to {language}: " if self.t5 else ""
        if self.multi_target:
            code = self._code_token(language)
            if self.style == "marian":
                prefix = f"{code} "
            else:
                kwargs["forced_bos_token_id"] = self.tok.convert_tokens_to_ids(code)
                src = self._code_token(ENGLISH)
                if src is not None and hasattr(self.tok, "src_lang"):
                    self.tok.src_lang = src if self.style != "m2m" else LANGUAGE_CODES[ENGLISH]["m2m"][0]
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            batch = [prefix + t for t in texts[i:i + self.batch_size]]
            enc = self.tok(batch, return_tensors="pt", padding=True, truncation=True)
            with torch.no_grad():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                          **kwargs)
            out += [" ".join(t.split()) for t in self.tok.batch_decode(gen, skip_special_tokens=True)]
        return out
