"""Word-level noise from nlpaug: random word swaps and deletions, a share 0.05*k of words."""

from __future__ import annotations

from emidbench.common.hashing import seeded_global_rng as seeded
from emidbench.shift.text import PERTURBATIONS, TextPerturbation


def _random_word(action: str):
    def apply(text: str, k: int, seed: int) -> str:
        import nlpaug.augmenter.word as naw

        with seeded(seed):
            out = naw.RandomWordAug(action=action, aug_p=0.05 * k).augment(text)
        return out[0] if isinstance(out, list) else out

    return apply


def _import(texts: list[str], k: int) -> None:
    import nlpaug.augmenter.word  # noqa: F401


for _action in ("swap", "delete"):
    PERTURBATIONS.register(f"word_{_action}", f"random word {_action} (nlpaug RandomWordAug), 5% of words per level")(
        TextPerturbation(f"word_{_action}", _random_word(_action), range(1, 11), latin_only=False,
                         prepare=_import))
