"""Which CLUB estimator(s) score a model, and where they are kept.

A fitted CLUB estimator carries noise of its own: refitting it after removing two answers
of one scenario, or with another seed, moves the other scenarios' EMID by several percent
(scripts/estimator_noise.py measures it). Two models scored with two separately fitted
estimators therefore differ by that noise as well as by their answers. So, by default,
one estimator per run is shared by every model:

    shared          RUN/scores/_estimator/: fitted once on the pairs of every model with
                    answers in RUN (reference pairs once, each model's answer pairs), then
                    reused as it is by every model's score; estimator.json records the
                    models, their pairs' digests, the seed(s) and the embedder
    refit           fit the shared estimator again (on every model with answers now) and use
                    it; the models scored with the previous one are named (rescore them)
    fit-per-model   one estimator fitted on this model's pairs alone, in RUN/scores/<model>/
    PATH            a checkpoint (the published CLUB_global.pt), used as it is

`ensemble` K > 1 fits K estimators (seeds: --seed, then derived ones); EMI is their mean
and the bootstrap pools every resample over the K of them, so the intervals cover a
single estimator's refit variance as well as the item sampling (conservative for the
mean of K, whose own estimator variance is K times smaller).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from emidbench.common.errors import UserError
from emidbench.common.hashing import derive_seed
from emidbench.common.io import atomic_write_json, read_json
from emidbench.rundir import SCORE_RECORD
from emidbench.rundir.records import ScoreRecord

SHARED_DIR = "_estimator"  # under RUN/scores/; never a model's name (model folders hold metrics.csv)
MODES = ("shared", "refit", "fit-per-model")


def mode_of(estimator: str) -> str:
    """shared, refit, fit-per-model, or path."""
    if estimator == "fit":  # the old default's name would now be ambiguous: ask
        raise UserError("--estimator fit: say which: `shared` (one estimator for every model of the run, the "
                        "default), `refit` (fit the shared one again) or `fit-per-model`")
    return estimator if estimator in MODES else "path"


def ensemble_seeds(seed: int, ensemble: int) -> list[int]:
    """The first estimator is fitted with --seed itself (ensemble 1 = a single fit, as before)."""
    return [seed] + [derive_seed(seed, "estimator-ensemble", k) for k in range(1, ensemble)]


def club_files(ensemble: int) -> list[str]:
    return ["club.pt"] + [f"club-{k}.pt" for k in range(1, ensemble)]


def pairs_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def file_digest(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def fit_ensemble(pairs_x: np.ndarray, pairs_y: np.ndarray, seed: int, ensemble: int, say, what: str,
                 console=None):
    """K estimators on the same pairs, one per seed; returns (clubs, fit records). A
    progress bar over each fit's epochs (early stopping may end it before the last)."""
    from emidbench.common.progress import progress_bar
    from emidbench.score.club import MAX_EPOCHS, fit_club

    clubs, fits = [], []
    for k, s in enumerate(ensemble_seeds(seed, ensemble)):
        with progress_bar(console, MAX_EPOCHS, f"fitting CLUB {k + 1}/{ensemble} on {len(pairs_x)} pairs",
                          "epochs") as bar:
            club, info = fit_club(pairs_x, pairs_y, seed=s, on_epoch=lambda epoch, val: bar.advance(1))
        clubs.append(club)
        fits.append({"file": club_files(ensemble)[k], "seed": s, "val_loglik": float(info["val_loglik"]),
                     **{key: info[key] for key in ("epochs", "n_train", "n_val", "lr", "batch_size", "hidden")}})
        say(f"{what}: fitted CLUB {k + 1}/{ensemble} on {len(pairs_x)} pairs (seed {s}), validation "
            f"log-likelihood {info['val_loglik']:.4g}")
    return clubs, fits


def save_ensemble(clubs, directory: Path, ensemble: int) -> list[Path]:
    from emidbench.score.club import save_club

    paths = [Path(directory) / name for name in club_files(ensemble)]
    for club, path in zip(clubs, paths):
        save_club(club, path)
    return paths


def load_ensemble(directory: Path, ensemble: int):
    from emidbench.score.club import load_club

    return [load_club(Path(directory) / name) for name in club_files(ensemble)]


# --------------------------------------------------------------------------- the shared one

def shared_dir(scores_root: Path) -> Path:
    return Path(scores_root) / SHARED_DIR


def read_record(scores_root: Path) -> dict | None:
    path = shared_dir(scores_root) / "estimator.json"
    if not path.is_file():
        return None
    rec = read_json(path)
    if not isinstance(rec, dict) or not isinstance(rec.get("fits"), list):
        raise UserError(f"{path}: not an estimator record; pass --estimator refit to fit the shared estimator again")
    return rec


def settings_mismatch(rec: dict, embedder_identity: str, seed: int, ensemble: int) -> str | None:
    """Why the recorded shared estimator cannot serve a score with these settings (or None)."""
    wanted = {"embedder": embedder_identity, "seed": seed, "ensemble": ensemble}
    diff = [f"{k} {rec.get(k)!r} (asked: {v!r})" for k, v in wanted.items() if rec.get(k) != v]
    return "; ".join(diff) or None


def pooled_pairs(per_model: dict[str, tuple[dict, dict]]) -> tuple[np.ndarray, np.ndarray, dict, int]:
    """The shared estimator's training pairs. per_model: model -> (items, sets) with items
    {scenario: [question, ...]} aligned with sets {scenario: EmbeddingSet}. Each (query,
    reference) pair once (every model sees the same references), then each model's
    (query, answer) pairs, models in name order. With one model these are exactly the
    pairs a per-model fit uses, in the same order."""
    ref_x, ref_y, seen = [], [], set()
    ans_x, ans_y, digests = [], [], {}
    for model in sorted(per_model):
        items, sets = per_model[model]
        mx, my = [], []
        for sc, s in sets.items():
            x = s.x
            new = []  # items whose reference pair is not in yet
            for i, it in enumerate(items[sc]):
                key = (sc, str(it["question_id"]))
                if key not in seen:
                    seen.add(key)
                    new.append(i)
            if new:  # gathered once per scenario (a row view would keep the whole gathered set alive)
                ref_x.append(x[new])
                ref_y.append(s.y[new])
            mx.append(x)
            my.append(s.y_hat)
        mx, my = np.concatenate(mx), np.concatenate(my)
        ans_x.append(mx)
        ans_y.append(my)
        digests[model] = {"n_answer_pairs": int(len(mx)), "pairs_sha256": pairs_digest(mx, my)}
    n_ref = sum(len(r) for r in ref_x)
    xs = np.concatenate([*ref_x, *ans_x])
    ys = np.concatenate([*ref_y, *ans_y])
    return xs, ys, digests, n_ref


def fit_shared(scores_root: Path, per_model: dict, embedder_identity: str, seed: int, ensemble: int, say,
               console=None) -> dict:
    """Fit the shared estimator(s) on every given model's pairs and write them with their
    record (each file atomically; the record last, so a cut-short fit is refitted)."""
    xs, ys, digests, n_ref = pooled_pairs(per_model)
    clubs, fits = fit_ensemble(xs, ys, seed, ensemble, say, "shared estimator", console)
    d = shared_dir(scores_root)
    paths = save_ensemble(clubs, d, ensemble)
    for extra in d.glob("club-*.pt"):  # members of an earlier, larger ensemble
        if extra not in paths:
            extra.unlink()
    rec = {"kind": "shared", "embedder": embedder_identity, "seed": seed, "ensemble": ensemble,
           "models": sorted(per_model), "per_model": digests, "n_reference_pairs": n_ref,
           "n_pairs": int(len(xs)), "pairs_sha256": pairs_digest(xs, ys), "fits": fits,
           "sha256": file_digest(paths)}
    atomic_write_json(d / "estimator.json", rec)
    return rec


def stale_scores(scores_root: Path, sha256: str) -> list[str]:
    """Models whose score.json says they were scored with a shared estimator other than this one."""
    out = []
    root = Path(scores_root)
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if p.name == SHARED_DIR:
            continue
        try:
            record = ScoreRecord.read(p / SCORE_RECORD)
        except UserError:  # a damaged record says nothing about which estimator it used
            continue
        est = (record.estimator if record else None) or {}
        if est.get("kind") == "shared" and est.get("sha256") != sha256:
            out.append(p.name)
    return out
