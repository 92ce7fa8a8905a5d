"""`emidbench score --from-embeddings DIR`: score embeddings extracted elsewhere.

DIR/manifest.json  {"id": "<scenario>", "scenarios": ["<scenario>", ...]}
DIR/<scenario>.npz float32 arrays x_v, x_t, y_hat, y (n x d, rows L2-normalised, the
                   same n and row order within a scenario)
-> OUT/per_shift.csv: scenario, emi, emid, emid_ub, jsd_v, jsd_t, jsd_y_id, jsd_y_ood
   (+ emid_true_ub with --entropy-scaler, + *_lo/*_hi with --bootstrap)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emidbench.common.errors import UserError
from emidbench.common.io import read_json, write_csv
from emidbench.rundir.metrics import EMBEDDING_CI_COLUMNS, EMBEDDING_COLUMNS
from emidbench.score.club import load_club
from emidbench.score.metrics import EmbeddingSet, score_scenarios

KEYS = ("x_v", "x_t", "y_hat", "y")


NORM_TOLERANCE = 1e-2  # float16 embeddings normalised before casting are within ~1e-3


def load_embedding_dir(d: Path) -> tuple[str, dict[str, EmbeddingSet]]:
    d = Path(d)
    man = read_json(d / "manifest.json")
    if not isinstance(man, dict) or "id" not in man or not isinstance(man.get("scenarios"), list):
        raise UserError(f"{d / 'manifest.json'}: expected {{\"id\": ..., \"scenarios\": [...]}}")
    names = [str(s) for s in man["scenarios"]]
    if man["id"] not in names:
        names = [str(man["id"]), *names]
    sets = {}
    for name in names:
        path = d / f"{name}.npz"
        try:
            with np.load(path) as z:
                missing = [k for k in KEYS if k not in z.files]
                if missing:
                    raise UserError(f"{path}: missing arrays {missing}")
                arrs = {k: np.asarray(z[k], dtype=np.float32) for k in KEYS}
        except FileNotFoundError:
            raise UserError(f"{path}: not found (listed in manifest.json)") from None
        except (ValueError, OSError) as e:
            raise UserError(f"{path}: not a readable .npz ({type(e).__name__})") from None
        shapes = {k: a.shape for k, a in arrs.items()}
        if len({s for s in shapes.values()}) != 1 or arrs["x_v"].ndim != 2:
            raise UserError(f"{path}: arrays must all be n x d with the same n and d (got {shapes})")
        for k, a in arrs.items():
            if not np.isfinite(a).all():
                raise UserError(f"{path}: array {k} contains NaN or inf")
            norms = np.linalg.norm(a.astype(np.float64), axis=1)
            off = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
            if off.size:  # the estimator and the JSDs assume unit rows, as the paper's pipeline makes them
                raise UserError(f"{path}: array {k} row {off[0]} has norm {norms[off[0]]:.4g}; rows must be "
                                f"L2-normalised ({off.size} of {len(a)} are not)")
        sets[name] = EmbeddingSet(**arrs)
    return str(man["id"]), sets


def score_from_embeddings(d: Path, estimator: Path, out: Path, entropy_scaler: float | None = None,
                          bootstrap: int = 0, seed: int = 0) -> Path:
    id_name, sets = load_embedding_dir(d)
    club = load_club(estimator)
    dim = next(iter(sets.values())).x_v.shape[1]
    if dim != club.x_dim:
        raise UserError(f"{d}: embeddings are {dim}-d; the estimator {estimator} expects {club.x_dim}-d")
    rows = score_scenarios(id_name, sets, club, entropy_scaler, bootstrap, seed)
    cols = list(EMBEDDING_COLUMNS)
    if entropy_scaler is not None:
        cols.insert(5, "emid_true_ub")
    if bootstrap:
        cols += EMBEDDING_CI_COLUMNS
    path = Path(out) / "per_shift.csv"
    write_csv(path, rows, cols)
    return path
