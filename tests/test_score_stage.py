"""`emidbench score` end to end on a small run directory built here: alignment by
question_id, missing and failed answers, the fitted and the loaded estimator, the
outputs and their determinism, the bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from emidbench.common.errors import UserError
from emidbench.rundir import RunDir
from emidbench.rundir.metrics import METRIC_COLUMNS
from emidbench.score import run_score
from tests.helpers import make_answered_run, quiet_console, read_metrics, reproducible_bytes

# --------------------------------------------------------------------------- end to end

def test_score_end_to_end_with_fitted_estimator(tmp_path):
    run = make_answered_run(tmp_path / "run", drop={"bench_blur": [1, 7]}, fail={"bench_typo": [4]})
    console, log = quiet_console()
    path = run_score(run, "m", estimator="fit-per-model", console=console)
    assert path == run / "scores" / "m" / "metrics.csv"
    header = path.read_text().splitlines()[0].split(",")
    assert header == METRIC_COLUMNS
    rows = read_metrics(path)
    assert [r["scenario"] for r in rows] == ["bench", "bench_blur", "bench_typo"]
    by = {r["scenario"]: r for r in rows}
    assert (by["bench"]["n"], by["bench"]["n_missing"], by["bench"]["n_failed"]) == ("12", "0", "0")
    assert (by["bench_blur"]["n"], by["bench_blur"]["n_missing"], by["bench_blur"]["n_failed"]) == ("10", "2", "0")
    assert (by["bench_typo"]["n"], by["bench_typo"]["n_missing"], by["bench_typo"]["n_failed"]) == ("11", "0", "1")
    assert "2 questions without an answer and 1 failed generations" in log.getvalue()
    assert float(by["bench"]["emid"]) == 0.0
    for r in rows:
        for col in ("emi", "emid", "emid_ub", "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood"):
            assert np.isfinite(float(r[col])), (r["scenario"], col)
        for col in ("emi_lo", "emid_true_ub", "rp_score", "win_rate", "judge_n", "judge_failed"):
            assert r[col] == ""  # not computed: an empty cell, never a placeholder
    assert float(by["bench_blur"]["jsd_v"]) > float(by["bench_typo"]["jsd_v"])  # typo: same images (2 fewer)
    assert float(by["bench_typo"]["jsd_t"]) > float(by["bench_blur"]["jsd_t"])
    record = json.loads((run / "scores" / "m" / "score.json").read_text())
    assert record["estimator"]["kind"] == "fit-per-model" and np.isfinite(record["estimator"]["val_loglik"])
    assert record["estimator"]["n_pairs"] == 2 * (12 + 10 + 11)
    assert record["embedder"]["name"] == "offline" and record["embedder"]["identity"].startswith("offline")
    assert record["counts"]["missing"] == 2 and record["counts"]["failed"] == 1
    assert record["judge"] is None

    # The numbers are those of the aligned items, computed directly.
    from emidbench.embedders import make_embedder
    from emidbench.score.club import load_club
    from emidbench.score.metrics import EmbeddingSet, score_scenarios

    emb, rd = make_embedder("offline"), RunDir(run)
    sets = {}
    for name in ("bench", "bench_blur", "bench_typo"):
        answers = {a["question_id"]: a for a in map(json.loads, rd.responses_path("m", name).read_text().splitlines())}
        its = [q for q in rd.read_scenario(name)
               if q["question_id"] in answers and not answers[q["question_id"]]["metadata"].get("error")]
        sets[name] = EmbeddingSet(x_v=emb.embed_images([rd.image_path(q["image"]).read_bytes() for q in its]),
                                  x_t=emb.embed_texts([q["text"] for q in its]),
                                  y_hat=emb.embed_texts([answers[q["question_id"]]["text"] for q in its]),
                                  y=emb.embed_texts([q["reference"] for q in its]))
    club = load_club(run / "scores" / "m" / "club.pt")
    direct = {r["scenario"]: r for r in score_scenarios("bench", sets, club)}
    for name, r in by.items():
        for col in ("emi", "emid", "emid_ub", "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood"):
            assert float(r[col]) == pytest.approx(direct[name][col], abs=1e-9), (name, col)

    # A rerun: nothing embedded again, byte-identical outputs (score.json's wall times
    # aside: the one field that is not reproducible; the rest of it byte-identical).
    before = {p: reproducible_bytes(run / "scores" / "m" / p) for p in ("metrics.csv", "score.json", "club.pt")}
    console2, log2 = quiet_console()
    run_score(run, "m", estimator="fit-per-model", console=console2)
    assert "0 new embeddings" in log2.getvalue()
    for p, data in before.items():
        assert reproducible_bytes(run / "scores" / "m" / p) == data, p
    # A fresh copy without the cache: the same bytes too.
    copy = tmp_path / "copy"
    shutil.copytree(run / "shifts", copy / "shifts")
    shutil.copytree(run / "responses", copy / "responses")
    run_score(copy, "m", estimator="fit-per-model")
    for p, data in before.items():
        assert reproducible_bytes(copy / "scores" / "m" / p) == data, p



def test_score_with_a_saved_estimator_and_id_override(tmp_path):
    import torch

    from emidbench.score.club import CLUB, save_club

    run = make_answered_run(tmp_path / "run", n_images=3)
    torch.manual_seed(0)
    save_club(CLUB(256, 256, 64), tmp_path / "club.pt")
    run_score(run, "m", estimator=str(tmp_path / "club.pt"), id_scenario="bench_blur", entropy_scaler=2.0)
    by = {r["scenario"]: r for r in read_metrics(run / "scores" / "m" / "metrics.csv")}
    assert float(by["bench_blur"]["emid"]) == 0.0 and float(by["bench"]["emid"]) != 0.0
    assert float(by["bench"]["emid_true_ub"]) > float(by["bench"]["emid_ub"]) > 0
    assert not (run / "scores" / "m" / "club.pt").exists()
    record = json.loads((run / "scores" / "m" / "score.json").read_text())
    assert record["estimator"] == {"kind": "path", "path": str(tmp_path / "club.pt")}
    assert record["id_scenario"] == "bench_blur"

    save_club(CLUB(768, 768, 500), tmp_path / "club768.pt")
    with pytest.raises(UserError, match="768-d"):
        run_score(run, "m", estimator=str(tmp_path / "club768.pt"))
    with pytest.raises(UserError, match="no such file"):
        run_score(run, "m", estimator=str(tmp_path / "nope.pt"))


def test_score_with_the_paper_embedder_on_tiny_encoders(tmp_path):
    import torch

    from emidbench.score.club import CLUB, save_club
    from tests.test_embedders import build_tiny_clip_vision, build_tiny_xlmr

    vision, text = build_tiny_clip_vision(tmp_path / "clip"), build_tiny_xlmr(tmp_path / "xlmr")
    run = make_answered_run(tmp_path / "run", n_images=2)
    torch.manual_seed(0)
    save_club(CLUB(16, 16, 32), tmp_path / "club.pt")
    run_score(run, "m", embedder="paper", vision_encoder=str(vision), text_encoder=str(text),
              estimator=str(tmp_path / "club.pt"), bootstrap=20)
    rows = read_metrics(run / "scores" / "m" / "metrics.csv")
    assert all(np.isfinite(float(r["emi"])) for r in rows)
    for r in rows:  # bootstrap intervals present, ordered
        assert float(r["emi_lo"]) <= float(r["emi_hi"])
    record = json.loads((run / "scores" / "m" / "score.json").read_text())
    assert record["embedder"]["identity"].startswith("paper:")
    assert record["embedder"]["vision_encoder"] == str(vision)
    with pytest.raises(UserError, match="expects 16-d"):  # the offline embedder is 256-d
        run_score(run, "m", estimator=str(tmp_path / "club.pt"))


# --------------------------------------------------------------------------- bad input

def test_bad_inputs(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=2)
    with pytest.raises(UserError, match=r"no scenario 'nope' in this run \(have: bench, bench_blur, bench_typo\)"):
        run_score(run, "m", id_scenario="nope")
    with pytest.raises(UserError, match=r"no answers for model 'other'.*have: m"):
        run_score(run, "other")
    (RunDir(run).responses_dir("gpt-4o")).mkdir()  # an eval that failed to start: eval.json only
    (RunDir(run).responses_dir("gpt-4o") / "eval.json").write_text("{}")
    with pytest.raises(UserError, match=r"no answers for model 'other'.*\(have: m\)"):
        run_score(run, "other")
    with pytest.raises(UserError, match="no shifted data"):
        run_score(tmp_path / "empty", "m")
    with pytest.raises(UserError, match="--bootstrap"):
        run_score(run, "m", bootstrap=-1)
    with pytest.raises(UserError, match="unknown embedder"):
        run_score(run, "m", embedder="clip")
    # The ID scenario without a single answer: nothing to compare against.
    rd = RunDir(run)
    rd.responses_path("m", "bench").write_text("")
    with pytest.raises(UserError, match="ID scenario bench has no answered question"):
        run_score(run, "m")


def test_missing_image_and_missing_reference(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=2)
    rd = RunDir(run)
    records = rd.read_scenario("bench_blur")
    (rd.images / records[0]["image"]).unlink()
    with pytest.raises(UserError, match=r"bench_blur.jsonl: question 0: image .* is missing"):
        run_score(run, "m")
    run2 = make_answered_run(tmp_path / "run2", n_images=2)
    rd2 = RunDir(run2)
    recs = rd2.read_scenario("bench")
    del recs[2]["reference"]
    rd2.write_scenario("bench", recs)
    with pytest.raises(UserError, match="question 2 has no reference"):
        run_score(run2, "m")


def test_a_scenario_without_answers_gets_an_empty_row(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=2)
    RunDir(run).responses_path("m", "bench_typo").unlink()
    rows = {r["scenario"]: r for r in read_metrics(run_score(run, "m"))}
    assert rows["bench_typo"]["n"] == "0" and rows["bench_typo"]["n_missing"] == "6"
    assert rows["bench_typo"]["emi"] == "" and rows["bench_blur"]["emi"] != ""


def test_answers_made_with_different_settings_are_named_and_recorded(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=2)
    rd = RunDir(run)
    for name in ("bench", "bench_blur", "bench_typo"):  # as `emidbench eval` records them
        path = rd.responses_path("m", name)
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        tokens = 32 if name == "bench_typo" else 48
        for r in recs:
            r["metadata"].update({"max_new_tokens": tokens, "temperature": 0.0, "system_prompt": None})
        path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    console, buf = quiet_console()
    run_score(run, "m", console=console)
    out = " ".join(buf.getvalue().split())
    assert ("warning: m's answers were generated with different settings (max_new_tokens=48, temperature=0.0, "
            "system_prompt=None in 2 scenario(s), e.g. bench; max_new_tokens=32, temperature=0.0, "
            "system_prompt=None in 1 scenario(s), e.g. bench_typo)") in out, out
    record = json.loads((rd.scores_dir("m") / "score.json").read_text())
    assert [(g["settings"].split(",")[0], g["scenarios"]) for g in record["generation"]] == \
           [("max_new_tokens=48", ["bench", "bench_blur"]), ("max_new_tokens=32", ["bench_typo"])]
    # one setting: no warning
    typo = rd.responses_path("m", "bench_typo")
    typo.write_text(typo.read_text().replace('"max_new_tokens": 32', '"max_new_tokens": 48'))
    console, buf = quiet_console()
    run_score(run, "m", console=console)
    assert "warning" not in buf.getvalue()
    assert len(json.loads((rd.scores_dir("m") / "score.json").read_text())["generation"]) == 1


def test_embeddings_are_held_once_per_distinct_input_and_gathered_by_index(tmp_path):
    """Issue 18: score's memory grows with the distinct inputs, not with scenarios x
    items. Scenarios that reuse the ID images and questions point at the same rows of
    one table (the cache's matrix) by index; no scenario holds vectors of its own."""
    import torch

    from emidbench.embedders import make_embedder
    from emidbench.embedders.cache import EmbeddingCache
    from emidbench.score.club import CLUB
    from emidbench.score.metrics import EmbeddingSet, IndexedSet, _boot_emis
    from emidbench.score.stage import _aligned_items, _distinct_inputs, _embed

    names = ("bench", "bench_blur", "bench_typo", "bench_again", "bench_more")  # the last two: bench's inputs
    run = make_answered_run(tmp_path / "run", scenarios=names)
    rd = RunDir(run)
    manifest = rd.read_manifest()
    items = _aligned_items(rd, manifest, "m")[0]
    emb = make_embedder("offline")
    cache = EmbeddingCache(rd.cache / "embeddings", emb)
    sets = _embed(rd, manifest, items, cache, lambda m: None)

    images = {it["image"] for its in items.values() for it in its}
    texts = {it[k] for its in items.values() for it in its for k in ("text", "answer", "reference")}
    uses = 4 * sum(len(its) for its in items.values())
    assert len(images) == 8 and uses == 4 * 5 * 12  # bench's 4 images serve 4 of the 5 scenarios
    assert cache.computed == len(images) + len(texts)  # each distinct input embedded once
    table = cache.matrix
    assert table.shape == (len(images) + len(texts), emb.dim) and table.shape[0] < uses
    for s in sets.values():
        assert isinstance(s, IndexedSet) and s.table is table and set(vars(s)) == {"table", "rows"}
        assert all(r.dtype == np.int64 and r.ndim == 1 and len(r) == len(s) for r in s.rows.values())
    assert _distinct_inputs(sets) == {"images": len(images), "texts": len(texts), "uses": uses}
    # bench and bench_again: the same image and question rows, their own answer rows
    assert np.array_equal(sets["bench"].rows["x_v"], sets["bench_again"].rows["x_v"])
    assert np.array_equal(sets["bench"].rows["x_t"], sets["bench_again"].rows["x_t"])
    assert not np.array_equal(sets["bench"].rows["y_hat"], sets["bench_again"].rows["y_hat"])

    # the gathered vectors are the embedder's, and the bootstrap on them is the one on copies
    s = sets["bench_blur"]
    q = rd.read_scenario("bench_blur")
    by_id = {str(x["question_id"]): x for x in q}
    its = items["bench_blur"]
    np.testing.assert_array_equal(s.x_v, emb.embed_images([rd.image_path(by_id[str(it["question_id"])]["image"])
                                                           .read_bytes() for it in its]).astype(np.float32))
    np.testing.assert_array_equal(s.y_hat, emb.embed_texts([it["answer"] for it in its]).astype(np.float32))
    torch.manual_seed(0)
    clubs = [CLUB(emb.dim, emb.dim, 16)]
    copied = EmbeddingSet(s.x_v.copy(), s.x_t.copy(), s.y_hat.copy(), s.y.copy())
    np.testing.assert_array_equal(_boot_emis(clubs, s, 30, 3, "bench_blur"), _boot_emis(clubs, copied, 30, 3, "bench_blur"))

    # the record says how many distinct rows served how many uses
    run_score(run, "m", estimator="fit-per-model")
    record = json.loads((run / "scores" / "m" / "score.json").read_text())
    assert record["counts"]["distinct_embedded"] == {"images": 8, "texts": len(texts), "uses": uses}


def test_openmp_threads_sleep_while_waiting_unless_the_user_chose():
    """emidbench sets OMP_WAIT_POLICY=PASSIVE before torch loads (spinning threads made a
    CLUB fit step ~15x slower on a busy machine), and keeps a value the user set."""
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    code = "import emidbench, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
