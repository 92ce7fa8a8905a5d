import json

import numpy as np
import pytest

from emidbench.common.errors import UserError
from emidbench.score import score_from_embeddings
from emidbench.score.club import CLUB, save_club
from tests.helpers import reference_dir, run_cli


def write_dir(d, dim=16, names=("id", "s1", "s2"), n=(30, 20, 25)):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, k in zip(names, n):
        arrs = {key: rng.normal(size=(k, dim)).astype(np.float32) for key in ("x_v", "x_t", "y_hat", "y")}
        arrs = {key: a / np.linalg.norm(a, axis=1, keepdims=True) for key, a in arrs.items()}
        np.savez(d / f"{name}.npz", **arrs)
    (d / "manifest.json").write_text(json.dumps({"id": names[0], "scenarios": list(names)}))
    return d


def test_cli_from_embeddings(tmp_path):
    import torch

    write_dir(tmp_path / "emb")
    torch.manual_seed(0)
    save_club(CLUB(16, 16, 20), tmp_path / "club.pt")
    proc = run_cli("score", "--from-embeddings", tmp_path / "emb", "--estimator", tmp_path / "club.pt",
                   "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    import csv

    rows = list(csv.DictReader(open(tmp_path / "out" / "per_shift.csv")))
    assert [r["scenario"] for r in rows] == ["id", "s1", "s2"]
    assert set(["scenario", "emi", "emid", "emid_ub", "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood"]) <= set(rows[0])
    assert float(rows[0]["emid"]) == 0.0
    e_id = float(rows[0]["emi"])
    for r in rows[1:]:
        assert float(r["emid"]) == pytest.approx(e_id - float(r["emi"]), abs=1e-12)
    first = (tmp_path / "out" / "per_shift.csv").read_bytes()
    run_cli("score", "--from-embeddings", tmp_path / "emb", "--estimator", tmp_path / "club.pt", "--out", tmp_path / "out")
    assert (tmp_path / "out" / "per_shift.csv").read_bytes() == first
    proc = run_cli("score", tmp_path / "run", "--model", "m", "--from-embeddings", tmp_path / "emb",
                   "--estimator", tmp_path / "club.pt", "--out", tmp_path / "out2")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "emidbench: error: --from-embeddings scores DIR's embeddings alone: RUN, --model would be ignored; "
        "leave them out"], proc.stderr
    assert not (tmp_path / "out2").exists()


def test_published_estimator_on_768d(tmp_path):
    path = reference_dir("mllmshift-emi", "CLUB_global.pt")
    if path is None:
        pytest.skip("../shared/reference/mllmshift-emi/CLUB_global.pt is not beside this clone")
    write_dir(tmp_path / "emb", dim=768)
    out = score_from_embeddings(tmp_path / "emb", path, tmp_path / "out", entropy_scaler=1.5, bootstrap=20)
    header = out.read_text().splitlines()[0].split(",")
    assert "emid_true_ub" in header and "emi_lo" in header
    with pytest.raises(UserError, match="embeddings are 16-d; the estimator .* expects 768-d"):
        score_from_embeddings(write_dir(tmp_path / "small"), path, tmp_path / "o2")


@pytest.mark.parametrize("breakage,match", [
    ("missing_npz", r"s2.npz: not found"),
    ("missing_key", r"s1.npz: missing arrays \['y'\]"),
    ("rows", r"s1.npz: arrays must all be n x d"),
    ("nan", r"s1.npz: array x_t contains NaN"),
    ("manifest", r"manifest.json: expected"),
    ("unnormalised", r"s1.npz: array x_v row 0 has norm 3; rows must be L2-normalised \(20 of 20 are not\)"),
])
def test_bad_embedding_dirs(tmp_path, breakage, match):
    d = write_dir(tmp_path / "emb")
    save_club(CLUB(16, 16, 20), tmp_path / "club.pt")
    z = dict(np.load(d / "s1.npz"))
    if breakage == "missing_npz":
        (d / "s2.npz").unlink()
    elif breakage == "missing_key":
        z.pop("y")
    elif breakage == "rows":
        z["y"] = z["y"][:5]
    elif breakage == "nan":
        z["x_t"][0, 0] = np.nan
    elif breakage == "unnormalised":
        z["x_v"] = z["x_v"] * 3
    elif breakage == "manifest":
        (d / "manifest.json").write_text("[]")
    np.savez(d / "s1.npz", **z)
    with pytest.raises(UserError, match=match):
        score_from_embeddings(d, tmp_path / "club.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
