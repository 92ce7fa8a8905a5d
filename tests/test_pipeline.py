"""`emidbench run` end to end through the CLI: shift -> eval -> score -> report on the
`mini` benchmark with a 3-set suite written here, the bundled tiny-llava, the offline
embedder, a fitted CLUB and the offline judge; a rerun that skips every stage and
changes no file; a rerun after a lost responses file that answers only that scenario
again and rescores; failed eval items (exit code 1, one notice); a config with a typo'd
key or a bad value (one line, exit code 2, before any stage runs)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli

MODEL = "tiny-llava"
SCENARIOS = ["mini", "mini_defocus_blur_3", "mini_KeyboardAug_3"]
SUITE = {
    "description": "ID + defocus_blur 3 + KeyboardAug 3",
    "synthetic": {"grid": "separate", "visual": [{"name": "defocus_blur", "severities": [3]}],
                  "text": [{"name": "KeyboardAug", "severities": [3]}]},
}


def write_config(folder: Path, out: Path, suite: Path | None = None, **changes) -> Path:
    """A run config in folder; the suite YAML is written beside it unless given (a rerun
    must name the same suite: its path is part of what the shift stage was run with)."""
    if suite is None:
        suite = folder / "three.yaml"
        suite.write_text(yaml.safe_dump(SUITE), encoding="utf-8")
    cfg = {"out": str(out), "benchmark": "mini", "suite": str(suite), "seed": 0, "limit": 4,
           "models": [{"model": MODEL, "backend": "hf", "batch_size": 8, "max_new_tokens": 8}],
           "score": {"embedder": "offline", "estimator": "shared", "judge": "offline"}}
    cfg.update(changes)
    path = folder / f"run-{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under root: (mtime in ns, bytes)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file()}


def stage_lines(stderr: str) -> dict[str, str]:
    """The first line each stage printed: 'shift: ...', 'eval tiny-llava ...', 'score ...'."""
    out: dict[str, str] = {}
    for line in stderr.splitlines():
        for stage in ("shift", "eval", "score"):
            if line.startswith(stage) and stage not in out:
                out[stage] = line
    return out


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    run = folder / "run"
    config = write_config(folder, run)
    res = run_cli("run", "--config", config, env={"COLUMNS": "80"})
    assert res.returncode == 0, res.stderr[-3000:]
    return folder, run, res


def rerun_copy(first_run, tmp_path) -> tuple[Path, Path]:
    """A copy of the finished run (mtimes kept) and a config pointing at it."""
    folder, run, _ = first_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)  # copy2: mtimes preserved
    return copy, write_config(tmp_path, copy, suite=folder / "three.yaml")


def test_run_goes_from_benchmark_to_report(first_run):
    _, run, res = first_run
    for folder in ("shifts", "responses", "scores", "report"):
        assert (run / folder).is_dir(), folder
    manifest = json.loads((run / "shifts" / "manifest.json").read_text(encoding="utf-8"))
    scenarios = [s["name"] for s in manifest["scenarios"]]
    assert sorted(scenarios) == sorted(SCENARIOS)
    assert sorted(p.stem for p in (run / "responses" / MODEL).glob("*.jsonl")) == sorted(SCENARIOS)
    with open(run / "report" / MODEL / "per_shift.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["scenario"] for r in rows] == scenarios
    assert all(r["n"] == "4" and r["emi"] != "" and r["rp_score"] != "" for r in rows)
    for name in ("summary.csv", "correlations.csv", "emid_vs_bound.png"):
        assert (run / "report" / name).is_file(), name
    assert (run / "report" / MODEL / "severity.png").is_file()
    # The terminal summary is on stdout, readable at 80 columns.
    assert f"{MODEL} vs ID set mini" in res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) <= 80


def test_a_rerun_skips_every_stage_and_changes_no_file(first_run, tmp_path):
    run, config = rerun_copy(first_run, tmp_path)
    before = snapshot(run)
    res = run_cli("run", "--config", config)
    assert res.returncode == 0, res.stderr[-3000:]
    assert stage_lines(res.stderr) == {"shift": "shift: complete, skipped",
                                       "eval": f"eval {MODEL}: complete, skipped",
                                       "score": f"score {MODEL}: complete, skipped"}
    after = snapshot(run)
    assert sorted(after) == sorted(before)
    changed = [name for name in before if after[name] != before[name]]
    assert changed == []
    assert "worst EMID first" in res.stdout  # the report is still shown


def test_a_lost_responses_file_is_answered_again_and_rescored(first_run, tmp_path):
    run, config = rerun_copy(first_run, tmp_path)
    responses = run / "responses" / MODEL
    lost = responses / "mini_KeyboardAug_3.jsonl"
    lost_bytes = lost.read_bytes()
    lost.unlink()
    others = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in responses.glob("*.jsonl")}
    metrics = run / "scores" / MODEL / "metrics.csv"
    metrics_bytes = metrics.read_bytes()
    record = run / "scores" / MODEL / "score.json"
    record_mtime = record.stat().st_mtime_ns
    res = run_cli("run", "--config", config)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = stage_lines(res.stderr)
    assert lines["shift"] == "shift: complete, skipped"
    assert "skipped" not in lines["eval"] and "4 answered" in lines["eval"], lines["eval"]
    assert lines["score"] != f"score {MODEL}: complete, skipped"
    # Only the lost file was written again (greedy answers: the same bytes); the others untouched.
    assert lost.read_bytes() == lost_bytes
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in responses.glob("*.jsonl")
            if p != lost} == others
    # rescored (its record rewritten), to the same numbers: the same answers came back, and a
    # table that does not change is not rewritten
    assert record.stat().st_mtime_ns != record_mtime
    assert metrics.read_bytes() == metrics_bytes


@pytest.mark.parametrize("changes, key, hint", [
    ({"score": {"embeder": "offline"}}, "'score.embeder'", "'score.embedder'"),
    ({"modles": []}, "'modles'", "'models'"),
])
def test_a_typo_in_the_config_names_the_key(tmp_path, changes, key, hint):
    config = write_config(tmp_path, tmp_path / "run", **changes)
    res = run_cli("run", "--config", config)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("emidbench: error:"), err
    assert str(config) in err and key in err and hint in err, err
    typo = key.strip("'").split(".")[-1]
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if text.strip().startswith(typo + ":"))
    assert err.startswith(f"emidbench: error: {config}:{line}: unknown key"), err  # file:line of the typo
    assert not (tmp_path / "run").exists()  # nothing was started


def test_failed_eval_items_make_the_run_exit_1_after_the_report(first_run, tmp_path):
    """As `emidbench eval` alone: the run goes on to score and report, then exits 1;
    the eval stage's line is the one notice."""
    run, config = rerun_copy(first_run, tmp_path)
    scenario = run / "shifts" / "mini_defocus_blur_3.jsonl"
    for name in {json.loads(line)["image"] for line in scenario.read_text(encoding="utf-8").splitlines()}:
        (run / "shifts" / "images" / name).write_bytes(b"not an image")  # used by this scenario only
    (run / "responses" / MODEL / scenario.name).unlink()  # so eval asks those questions again
    res = run_cli("run", "--config", config)
    assert res.returncode == 1, res.stderr[-3000:]
    lines = stage_lines(res.stderr)
    assert lines["eval"].startswith(f"eval {MODEL}: 0 answered") and ", 4 failed" in lines["eval"], lines["eval"]
    assert [line for line in res.stderr.splitlines() if line.startswith("eval")] == [lines["eval"]]
    assert res.stderr.count("left out of scoring") == 1, res.stderr
    assert "worst EMID first" in res.stdout  # scored and reported all the same


@pytest.mark.parametrize("changes, message", [
    ({"score": {"embedder": "offline", "judge": "ofline"}},
     "score.judge: unknown judge 'ofline' (did you mean 'offline'?)"),
    ({"score": {"embedder": "papr"}}, "score.embedder: unknown embedder 'papr' (did you mean 'paper'?)"),
    ({"models": [{"model": MODEL, "backend": "hff"}]},
     "models[0].backend: unknown model backend 'hff' (did you mean 'hf'?)"),
    ({"eval": {"temperature": -1}}, "eval.temperature: --temperature must be 0 (greedy) or more (got -1)"),
    ({"score": {"embedder": "offline", "bootstrap": -1}},
     "score.bootstrap: --bootstrap must be 0 (none) or a number of resamples (got -1)"),
    ({"shift": {"dry_run": True}}, "shift.dry_run: `emidbench run` runs every stage; to print the scenario "
                                   "table only, use `emidbench shift --dry-run`"),
    ({"limit": "six"}, "limit: must be a positive integer, not 'six'"),
    ({"seed": 1.5}, "seed: must be an integer, not 1.5"),
])
def test_a_bad_value_in_the_config_stops_the_run_before_any_stage(tmp_path, changes, message):
    config = write_config(tmp_path, tmp_path / "run", **changes)
    res = run_cli("run", "--config", config)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"emidbench: error: {config}: {message}"
    assert res.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["three.yaml", config.name])  # nothing written


def test_config_shapes_a_user_may_write(tmp_path):
    """An empty section and a single model as a string are accepted; a damaged
    RUN/pipeline.json is one clear line, not a traceback."""
    from emidbench.common.errors import UserError
    from emidbench.pipeline import load_run_config
    from emidbench.rundir.records import PipelineRecord

    config = tmp_path / "c.yaml"
    config.write_text("out: run\nbenchmark: mini\nmodels: tiny-llava\nshift:\nscore:\n", encoding="utf-8")
    cfg = load_run_config(config)
    assert cfg["models"] == [{"model": "tiny-llava"}] and cfg["shift"] == {} and cfg["score"] == {}
    config.write_text("out: run\nbenchmark: mini\nmodels: {model: tiny-llava}\n", encoding="utf-8")
    with pytest.raises(UserError, match="'models' must be a list"):
        load_run_config(config)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pipeline.json").write_text("[]", encoding="utf-8")
    with pytest.raises(UserError, match="not a pipeline record"):
        PipelineRecord.read(tmp_path / "run" / "pipeline.json")


def test_a_lost_image_makes_the_shift_stage_run_again_and_restores_it(first_run, tmp_path):
    run, config = rerun_copy(first_run, tmp_path)
    images = sorted((run / "shifts" / "images").iterdir())
    lost = images[len(images) // 2]
    data = lost.read_bytes()
    lost.unlink()
    res = run_cli("run", "--config", config)
    assert res.returncode == 0, res.stderr[-3000:]
    assert stage_lines(res.stderr)["shift"] != "shift: complete, skipped"
    assert lost.read_bytes() == data


def test_two_models_share_one_estimator_fitted_after_both_answered(tmp_path):
    """Issue 19: the estimator is fitted once every model of the config has answered, on
    all of them, and both scores use it; a rerun neither refits nor rescores."""
    short = "tiny-llava-short"
    config = write_config(tmp_path, tmp_path / "run", models=[
        {"model": MODEL, "backend": "hf", "batch_size": 8, "max_new_tokens": 8},
        {"model": MODEL, "name": short, "backend": "hf", "batch_size": 8, "max_new_tokens": 3}])
    res = run_cli("run", "--config", config)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stderr.splitlines()
    first = {key: next(i for i, line in enumerate(lines) if line.startswith(key))
             for key in (f"eval {MODEL}", f"eval {short}", "estimator: fitting", f"score {MODEL}", f"score {short}")}
    assert first[f"eval {MODEL}"] < first[f"eval {short}"] < first["estimator: fitting"] < first[f"score {MODEL}"]
    run = tmp_path / "run"
    est = json.loads((run / "scores" / "_estimator" / "estimator.json").read_text())
    assert est["models"] == sorted([MODEL, short])
    records = [json.loads((run / "scores" / m / "score.json").read_text())["estimator"] for m in (MODEL, short)]
    assert all(r["kind"] == "shared" and r["sha256"] == est["sha256"] and r["this_model"] == "in the fit"
               for r in records)
    assert "fitting" not in " ".join(line for line in lines if line.startswith("score"))
    before = snapshot(run)
    res = run_cli("run", "--config", config)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "estimator: complete, skipped" in res.stderr
    assert snapshot(run) == before
