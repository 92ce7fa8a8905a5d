"""Character-level noise from nlpaug: keyboard typos, OCR errors, random character edits.

Level k perturbs a share 0.05*k of the words (`aug_word_p`), MM_Robustness's setting for
KeyboardAug; nlpaug's other defaults are kept (words shorter than 4 characters are left
alone, at least one word changes).
"""

from __future__ import annotations

from functools import lru_cache

from emidbench.shift.text import PERTURBATIONS, TextPerturbation
from emidbench.shift.seeding import seeded_global_rng as seeded


@lru_cache(maxsize=None)
def augmenter(kind: str, **kwargs):
    """One nlpaug augmenter per configuration, built once: building KeyboardAug reads and
    expands its keyboard map (~1 ms), more than augmenting a question. Building draws no
    random numbers and augment() keeps no state between calls, so reuse changes nothing."""
    import nlpaug.augmenter.char as nac

    return getattr(nac, kind)(**kwargs)


def _keyboard(text: str, k: int, seed: int) -> str:
    aug = augmenter("KeyboardAug", aug_word_p=0.05 * k)
    with seeded(seed):
        return _first(aug.augment(text))


def _ocr(text: str, k: int, seed: int) -> str:
    aug = augmenter("OcrAug", aug_word_p=0.05 * k)
    with seeded(seed):
        return _first(aug.augment(text))


def _random_char(action: str):
    def apply(text: str, k: int, seed: int) -> str:
        aug = augmenter("RandomCharAug", action=action, aug_word_p=0.05 * k)
        with seeded(seed):
            return _first(aug.augment(text))

    return apply


def _first(out) -> str:
    return out[0] if isinstance(out, list) else out


# The paper's name (KeyboardAug_1, KeyboardAug_3) and the text-noise suite's name.
PERTURBATIONS.register("KeyboardAug", "nlpaug KeyboardAug, aug_word_p=0.05*k (the paper's)")(
    TextPerturbation("KeyboardAug", _keyboard, range(1, 11)))
PERTURBATIONS.register("keyboard", "keyboard typos (nlpaug KeyboardAug), 5% of words per level")(
    TextPerturbation("keyboard", _keyboard, range(1, 11)))
PERTURBATIONS.register("ocr", "OCR confusions (nlpaug OcrAug), 5% of words per level")(
    TextPerturbation("ocr", _ocr, range(1, 11)))
for _action in ("insert", "substitute", "swap", "delete"):
    PERTURBATIONS.register(f"char_{_action}", f"random character {_action} (nlpaug RandomCharAug), 5% of words per level")(
        TextPerturbation(f"char_{_action}", _random_char(_action), range(1, 11)))
