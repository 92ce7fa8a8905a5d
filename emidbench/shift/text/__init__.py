"""Text perturbations: `perturb_text(text, name, severity, seed)`.

Each plugin is one small module registering into PERTURBATIONS. Perturbations that only
make sense for Latin-script (English) text pass other scripts through unchanged and say
so, instead of failing or silently garbling them.

A plugin may also say how to get ready (`prepare`): import its library, build its
augmenter, look up its WordNet entries. At LLaVA-Bench size that is most of a suite's
text cost (nlpaug's import alone takes longer than 2,500 perturbations), and as it draws
no random numbers the shift stage runs it on a helper thread beside the image work.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterable

from emidbench.common.errors import UserError
from emidbench.common.registry import Registry


@dataclass(frozen=True)
class TextPerturbation:
    name: str
    apply: Callable[[str, int, int], str]  # (text, severity, seed) -> text
    severities: range
    latin_only: bool = True
    # (texts, severity) -> None: load what apply() will need for them; draws no random numbers
    prepare: Callable[[list[str], int], None] | None = None


@dataclass(frozen=True)
class PerturbedText:
    text: str
    changed: bool
    note: str | None = None


PERTURBATIONS: Registry = Registry("text perturbation", plugins=[
    f"emidbench.shift.text.{m}" for m in ("eda", "nlpaug_char", "nlpaug_word")])


def check_perturbation(name: str, severity: int) -> TextPerturbation:
    p = PERTURBATIONS.get(name)
    if severity not in p.severities:
        raise UserError(
            f"text perturbation {name}: severity {severity} out of range {p.severities.start}..{p.severities.stop - 1}")
    return p


def is_latin(text: str) -> bool:
    """Most letters are Latin script (English, German, ...), not Hangul, Han, Greek, ..."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    return latin >= 0.5 * len(letters)


def perturb_text(text: str, name: str, severity: int, seed: int) -> PerturbedText:
    p = check_perturbation(name, severity)
    if p.latin_only and not is_latin(text):
        return PerturbedText(text, False, f"passed through: {name} is for Latin-script text")
    out = p.apply(text, severity, seed)
    return PerturbedText(out, out != text)


def prepare_texts(work: Iterable[tuple[str, int, list[str]]]) -> None:
    """Get every (perturbation, severity, texts) ready, as perturb_text will meet them:
    no random numbers are drawn, so this may run beside seeded work on another thread."""
    for name, severity, texts in work:
        p = check_perturbation(name, severity)
        if p.prepare is not None:
            p.prepare([t for t in texts if not p.latin_only or is_latin(t)], severity)
