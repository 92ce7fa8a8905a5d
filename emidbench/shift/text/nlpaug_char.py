"""Character-level noise from nlpaug: keyboard typos, OCR errors, random character edits.

Level k perturbs a share 0.05*k of the words (`aug_word_p`), MM_Robustness's setting for
KeyboardAug; nlpaug's other defaults are kept (words shorter than 4 characters are left
alone, at least one word changes).
"""

from __future__ import annotations

from functools import lru_cache

from emidbench.common.hashing import seeded_global_rng as seeded
from emidbench.shift.text import PERTURBATIONS, TextPerturbation


@lru_cache(maxsize=None)
def augmenter(kind: str, **kwargs):
    """One nlpaug augmenter per configuration, built once: building KeyboardAug reads and
    expands its keyboard map (~1 ms), more than augmenting a question. Building draws no
    random numbers and augment() keeps no state between calls, so reuse changes nothing."""
    import nlpaug.augmenter.char as nac

    return getattr(nac, kind)(**kwargs)


def _char_aug(name: str, kind: str, **kwargs) -> TextPerturbation:
    """The perturbation with nlpaug augmenter `kind` at aug_word_p = 0.05*k (registered below)."""

    def apply(text: str, k: int, seed: int) -> str:
        aug = augmenter(kind, aug_word_p=0.05 * k, **kwargs)
        with seeded(seed):
            out = aug.augment(text)
        return out[0] if isinstance(out, list) else out

    def prepare(texts: list[str], k: int) -> None:
        augmenter(kind, aug_word_p=0.05 * k, **kwargs)

    return TextPerturbation(name, apply, range(1, 11), prepare=prepare)


# The paper's name (KeyboardAug_1, KeyboardAug_3) and the text-noise suite's name.
PERTURBATIONS.register("KeyboardAug", "nlpaug KeyboardAug, aug_word_p=0.05*k (the paper's)")(
    _char_aug("KeyboardAug", "KeyboardAug"))
PERTURBATIONS.register("keyboard", "keyboard typos (nlpaug KeyboardAug), 5% of words per level")(
    _char_aug("keyboard", "KeyboardAug"))
PERTURBATIONS.register("ocr", "OCR confusions (nlpaug OcrAug), 5% of words per level")(_char_aug("ocr", "OcrAug"))
for _action in ("insert", "substitute", "swap", "delete"):
    PERTURBATIONS.register(f"char_{_action}", f"random character {_action} (nlpaug RandomCharAug), 5% of words per level")(
        _char_aug(f"char_{_action}", "RandomCharAug", action=_action))
