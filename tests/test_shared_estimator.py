"""One CLUB estimator per run, shared by every model (issue 19): fitted once on all
models' pairs and reused byte for byte by a second model's score; refitted only when
asked (and the models scored with the old one named); one per model on request; an
ensemble over seeds whose bootstrap intervals cover the estimators' spread; the same
bytes on a rerun."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from rich.console import Console

from emidbench.common.errors import UserError
from emidbench.rundir import RunDir
from emidbench.score import run_score
from tests.helpers import make_answered_run, read_metrics, reproducible_bytes


def add_model(run, source: str, name: str, garble: int):
    """A second model's answers: the first model's, every garble-th word replaced."""
    rd = RunDir(run)
    for path in sorted(rd.responses_dir(source).glob("*.jsonl")):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        for r in recs:
            words = r["text"].split()
            r["text"] = " ".join("kite" if i % garble == 0 else w for i, w in enumerate(words))
            r["model_id"] = name
        out = rd.responses_path(name, path.stem)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")


def quiet_console():
    buf = io.StringIO()
    return Console(file=buf, width=200), buf


def record(run, model):
    return json.loads((run / "scores" / model / "score.json").read_text())


def test_the_shared_estimator_is_fitted_once_and_reused_by_a_second_model(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=3)
    add_model(run, "m", "m2", garble=3)
    shared = run / "scores" / "_estimator"

    run_score(run, "m")
    fitted = (shared / "club.pt").read_bytes()
    est = json.loads((shared / "estimator.json").read_text())
    assert est["models"] == ["m", "m2"]  # every model with answers, not only the one scored
    assert est["n_reference_pairs"] == 27 and est["n_pairs"] == 27 + 2 * 27
    assert not (run / "scores" / "m" / "club.pt").exists()

    console, log = quiet_console()
    run_score(run, "m2", console=console)
    assert (shared / "club.pt").read_bytes() == fitted  # reused, not refitted
    assert "fitting" not in log.getvalue()
    r1, r2 = record(run, "m")["estimator"], record(run, "m2")["estimator"]
    assert r1["kind"] == r2["kind"] == "shared"
    assert r1["sha256"] == r2["sha256"] == est["sha256"]
    assert r2["fitted_on"] == ["m", "m2"] and r2["this_model"] == "in the fit"

    # A model that answered after the fit: the same estimator, and the record says so.
    add_model(run, "m", "m3", garble=2)
    console, log = quiet_console()
    run_score(run, "m3", console=console)
    assert (shared / "club.pt").read_bytes() == fitted
    assert record(run, "m3")["estimator"]["this_model"] == "not in the fit"
    assert "this model's answers are not in the fit" in " ".join(log.getvalue().split())

    # Other settings than the fitted one's: refused, with the way out.
    with pytest.raises(UserError, match=r"fitted with seed 0 \(asked: 1\).*--estimator refit"):
        run_score(run, "m", seed=1)

    # Asked to refit: fitted on all three now; the models scored with the old one are named.
    console, log = quiet_console()
    run_score(run, "m3", estimator="refit", console=console)
    assert (shared / "club.pt").read_bytes() != fitted
    assert json.loads((shared / "estimator.json").read_text())["models"] == ["m", "m2", "m3"]
    assert "m, m2 were scored with the previous shared estimator" in " ".join(log.getvalue().split())

    # One per model when asked: its own file, its own record.
    run_score(run, "m2", estimator="fit-per-model")
    assert (run / "scores" / "m2" / "club.pt").is_file()
    rec = record(run, "m2")["estimator"]
    assert rec["kind"] == "fit-per-model" and rec["n_pairs"] == 2 * 27
    run_score(run, "m2")  # back to the shared one: the per-model file is not this score's
    assert not (run / "scores" / "m2" / "club.pt").exists()

    # A changed estimator file is not silently used.
    (shared / "club.pt").write_bytes(fitted)
    with pytest.raises(UserError, match="do not match estimator.json"):
        run_score(run, "m")
    with pytest.raises(UserError, match="say which"):
        run_score(run, "m", estimator="fit")


def test_with_one_model_the_shared_estimator_is_the_per_model_one(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=2)
    run_score(run, "m")
    shared = read_metrics(run / "scores" / "m" / "metrics.csv")
    run_score(run, "m", estimator="fit-per-model")
    assert (run / "scores" / "m" / "club.pt").read_bytes() == (run / "scores" / "_estimator" / "club.pt").read_bytes()
    assert read_metrics(run / "scores" / "m" / "metrics.csv") == shared


def test_an_ensemble_widens_the_intervals_and_is_deterministic(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=4)
    run_score(run, "m", estimator="fit-per-model", bootstrap=60)
    single = {r["scenario"]: r for r in read_metrics(run / "scores" / "m" / "metrics.csv")}
    run_score(run, "m", estimator="fit-per-model", bootstrap=60, estimator_ensemble=3)
    pooled = {r["scenario"]: r for r in read_metrics(run / "scores" / "m" / "metrics.csv")}
    widths = []
    for name in ("bench_blur", "bench_typo"):
        w1 = float(single[name]["emid_hi"]) - float(single[name]["emid_lo"])
        w3 = float(pooled[name]["emid_hi"]) - float(pooled[name]["emid_lo"])
        assert w3 >= w1, (name, w1, w3)
        widths.append((w1, w3))
    assert any(w3 > w1 for w1, w3 in widths)
    rec = record(run, "m")
    assert rec["settings"]["estimator_ensemble"] == 3
    est = rec["estimator"]
    assert [f["file"] for f in est["fits"]] == ["club.pt", "club-1.pt", "club-2.pt"]
    assert est["fits"][0]["seed"] == 0 and len({f["seed"] for f in est["fits"]}) == 3
    spread = est["emid_sd_across_estimators"]
    assert spread["max"] > 0 and set(spread["per_scenario"]) == {"bench", "bench_blur", "bench_typo"}
    # EMI is the mean over the three estimators, each loadable from its file.
    from emidbench.score.club import load_club

    clubs = [load_club(run / "scores" / "m" / f["file"]) for f in est["fits"]]
    assert len({(run / "scores" / "m" / f["file"]).read_bytes() for f in est["fits"]}) == 3
    assert all(c.x_dim == 256 for c in clubs)

    # Same inputs, same seed: the same bytes, estimator files included (shared, ensemble 2).
    outputs = []
    for copy in ("a", "b"):
        dst = tmp_path / copy
        shutil.copytree(run / "shifts", dst / "shifts")
        shutil.copytree(run / "responses", dst / "responses")
        run_score(dst, "m", bootstrap=30, estimator_ensemble=2)
        files = ["scores/m/metrics.csv", "scores/m/score.json", "scores/_estimator/club.pt",
                 "scores/_estimator/club-1.pt", "scores/_estimator/estimator.json"]
        outputs.append([reproducible_bytes(dst / f) for f in files])  # score.json's wall times aside
    assert outputs[0] == outputs[1]

    with pytest.raises(UserError, match="one fixed estimator"):
        run_score(run, "m", estimator=str(run / "scores" / "m" / "club.pt"), estimator_ensemble=2)
    with pytest.raises(UserError, match="--estimator-ensemble must be"):
        run_score(run, "m", estimator_ensemble=0)
    assert np.isfinite(float(pooled["bench_blur"]["emid"]))


def test_the_bootstrap_in_one_pass_equals_one_estimate_per_resample():
    """CLUB.resampled_estimates (all resamples from a few matrix products) gives what
    estimate() gives on each resample taken out, for the same draws."""
    import torch

    from emidbench.score.bootstrap import resample_indices
    from emidbench.score.club import CLUB
    from emidbench.score.metrics import EmbeddingSet, _boot_emis, emi_of

    rng = np.random.default_rng(0)

    def unit(n, d=16):
        a = rng.normal(size=(n, d)).astype(np.float32)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    torch.manual_seed(0)
    clubs = [CLUB(16, 16, 24), CLUB(16, 16, 24)]
    s = EmbeddingSet(unit(23), unit(23), unit(23), unit(23))
    fast = _boot_emis(clubs, s, 40, 7, "scenario")
    slow = np.array([[emi_of(c, s.take(idx)) for c in clubs] for idx in resample_indices(23, 40, 7, "scenario")])
    assert fast.shape == (40, 2)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert np.ptp(fast[:, 0]) > 0  # the resamples differ


def test_the_report_warns_when_models_were_scored_with_different_estimators(tmp_path):
    from emidbench.report import run_report

    run = make_answered_run(tmp_path / "run", n_images=2)
    add_model(run, "m", "m2", garble=3)
    run_score(run, "m")
    run_score(run, "m2")
    console, log = quiet_console()
    run_report(run, console=console)
    assert "different CLUB estimators" not in log.getvalue()
    run_score(run, "m2", estimator="fit-per-model")
    console, log = quiet_console()
    run_report(run, console=console)
    said = " ".join(log.getvalue().split())
    assert "warning: the models were scored with different CLUB estimators" in said and "m2: fitted on m2 alone" in said
