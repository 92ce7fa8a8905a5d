"""Accuracy for choice scenarios (issue 16): each answer read back as an option
(benchmarks.choices.parse_answer), compared with the reference option.

Per scenario, over its answered choice items:
    accuracy      share of items whose parsed option is the reference; an unparsed answer
                  is wrong (it stays in the denominator: never dropped)
    accuracy_lo/hi  95% percentile bootstrap interval (score.bootstrap: items resampled
                  with the run's seed, --bootstrap resamples; empty without --bootstrap)
    macro_f1      F1 per class, averaged over the classes that are a reference or a parsed
                  answer of some item (scikit-learn's f1_score(average="macro") on those
                  labels); an unparsed answer counts against its reference's recall and
                  no class's precision
    n_unparsed    items whose answer matched no option
    chance        the expected accuracy of a uniform random pick: mean of 1/#options
Each item's reading is kept in RUN/scores/<model>/choices/<scenario>.jsonl; how the answers
were read (answer line, exact name, letter, fuzzy, unparsed) and the accuracy per class and
per domain in RUN/scores/<model>/choices.json.
"""

from __future__ import annotations

import numpy as np

from emidbench.benchmarks.choices import HOW, parse_answer
from emidbench.score.bootstrap import bootstrap_ci


def is_choice_item(item: dict) -> bool:
    return isinstance(item.get("choices"), list) and len(item["choices"]) > 0


def read_answers(items: list[dict]) -> list[dict]:
    """Each choice item's parsed option: question_id, parsed (option text or None), how,
    correct."""
    out = []
    for it in items:
        p = parse_answer(it["answer"], it["choices"])
        picked = it["choices"][p.index] if p.index is not None else None
        rec = {"question_id": it["question_id"], "reference": it["reference"], "parsed": picked, "how": p.how,
               "correct": picked is not None and picked == it["reference"], "answer": it["answer"]}
        if it.get("domain") is not None:
            rec["domain"] = it["domain"]
        out.append(rec)
    return out


def breakdown(readings: list[dict]) -> dict:
    """How the answers were read (the fallbacks counted: letter, fuzzy, unparsed) and the
    accuracy per class and per domain (Zhang et al. report both) of one scenario."""
    how = {h: sum(r["how"] == h for r in readings) for h in HOW}

    def by(key: str) -> dict:
        groups: dict[str, list[bool]] = {}
        for r in readings:
            if r.get(key) is not None:
                groups.setdefault(str(r[key]), []).append(r["correct"])
        return {g: {"n": len(v), "accuracy": sum(v) / len(v)} for g, v in sorted(groups.items())}

    return {"n": len(readings), "parsed_by": how, "by_class": by("reference"), "by_domain": by("domain")}


def macro_f1(references: list[str], predictions: list[str | None]) -> float:
    """Macro-averaged F1 over the classes seen as a reference or a prediction (None: an
    unparsed answer, a miss for its reference and no class's false positive)."""
    classes = sorted(set(references) | {p for p in predictions if p is not None})
    f1s = []
    for c in classes:
        tp = sum(1 for r, p in zip(references, predictions) if r == c and p == c)
        fp = sum(1 for r, p in zip(references, predictions) if r != c and p == c)
        fn = sum(1 for r, p in zip(references, predictions) if r == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else float("nan")


def choice_metrics(items: list[dict], bootstrap: int, seed: int, label: str) -> tuple[dict, list[dict]]:
    """(the metrics.csv cells, the per-item readings) of one scenario's choice items; ({}, [])
    when it has none (an open-ended scenario: its cells stay empty)."""
    items = [it for it in items if is_choice_item(it)]
    if not items:
        return {}, []
    readings = read_answers(items)
    correct = np.array([r["correct"] for r in readings], dtype=np.float64)
    row = {"accuracy": float(correct.mean()),
           "macro_f1": macro_f1([r["reference"] for r in readings], [r["parsed"] for r in readings]),
           "n_unparsed": sum(1 for r in readings if r["parsed"] is None),
           "chance": float(np.mean([1.0 / len(it["choices"]) for it in items]))}
    if bootstrap:
        row["accuracy_lo"], row["accuracy_hi"] = bootstrap_ci(lambda idx: correct[idx].mean(), len(correct),
                                                              bootstrap, seed, f"{label}/accuracy")
    return row, readings
