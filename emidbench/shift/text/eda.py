"""EDA synonym replacement (Wei & Zou 2019), as MM_Robustness used it for `sr_k`.

Level k: alpha_sr = 0.05*k. The sentence is first reduced the EDA way (lower case, only
[a-z ] kept, apostrophes dropped, hyphens to spaces); then n = max(1, int(alpha*#words))
distinct non-stop words, taken in a shuffled order, are each replaced everywhere by a
random WordNet synonym (words without synonyms are passed over). MM_Robustness also
resampled until a sentence encoder's cosine similarity to the original was >= 0.9; with
no encoder that filter is skipped. Unlike EDA, candidate lists are sorted before they
are shuffled, so the result does not depend on Python's string hashing.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from emidbench.common.hashing import seeded_global_rng
from emidbench.shift.text import PERTURBATIONS, TextPerturbation
from emidbench.shift.text.wordnet import wordnet

# EDA's stop-word list.
STOP_WORDS = set("""i me my myself we our ours ourselves you your yours yourself yourselves he him his
himself she her hers herself it its itself they them their theirs themselves what which who whom this
that these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during before
after above below to from up down in out on off over under again further then once here there when
where why how all any both each few more most other some such no nor not only own same so than too
very s t can will just don should now""".split()) | {""}


def clean(line: str) -> str:
    line = line.replace("’", "").replace("'", "").replace("-", " ").replace("\t", " ").replace("\n", " ").lower()
    line = "".join(c if c in "qwertyuiopasdfghjklzxcvbnm " else " " for c in line)
    return re.sub(" +", " ", line).strip()


@lru_cache(maxsize=None)
def synonyms(word: str) -> tuple[str, ...]:
    """The word's WordNet synonyms, cleaned the EDA way, sorted (memoised: the same
    questions are perturbed for many scenarios)."""
    out = set()
    for syn in wordnet().synsets(word):
        for lemma in syn.lemmas():
            s = lemma.name().replace("_", " ").replace("-", " ").lower()
            out.add("".join(c for c in s if c in " qwertyuiopasdfghjklzxcvbnm"))
    out.discard(word)
    out.discard("")
    return tuple(sorted(out))


def _candidates(words: list[str]) -> list[str]:
    return sorted({w for w in words if w not in STOP_WORDS})


def synonym_replacement(text: str, k: int, seed: int) -> str:
    words = [w for w in clean(text).split(" ") if w]
    n = max(1, int(0.05 * k * len(words)))
    candidates = _candidates(words)
    with seeded_global_rng(seed):
        random.shuffle(candidates)
        replaced = 0
        for word in candidates:
            options = synonyms(word)
            if options:
                choice = random.choice(options)
                words = [choice if w == word else w for w in words]
                replaced += 1
            if replaced >= n:
                break
    return " ".join(" ".join(words).split(" "))


def look_up(texts: list[str], k: int) -> None:
    """Load WordNet and the synonyms of every word synonym_replacement may replace."""
    wordnet()  # its clear error if missing, even when every synonym is memoised already
    for text in texts:
        for word in _candidates(clean(text).split(" ")):
            synonyms(word)


PERTURBATIONS.register("sr", "EDA synonym replacement over WordNet, alpha=0.05*k (the paper's sr_4, sr_7)")(
    TextPerturbation("sr", synonym_replacement, range(1, 11), prepare=look_up))
PERTURBATIONS.register("synonym", "WordNet synonym replacement (EDA), 5% of words per level")(
    TextPerturbation("synonym", synonym_replacement, range(1, 11), prepare=look_up))
