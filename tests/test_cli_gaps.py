"""The CLI gaps a new user met (issue 19, item 4): each is one clear line (or a printed
and recorded note) at the moment the mistake can first be seen."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml
from rich.console import Console

from emidbench.common.errors import UserError
from tests.helpers import make_answered_run, run_cli


def write_config(tmp_path, **changes):
    cfg = {"out": str(tmp_path / "run"), "benchmark": "mini", "suite": "paper-synthetic", "limit": 2,
           "models": [{"model": "tiny-llava"}], "score": {"embedder": "offline", "judge": "offline"}}
    cfg.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def config_error(path) -> str:
    from emidbench.pipeline import load_run_config

    with pytest.raises(UserError) as err:
        load_run_config(path)  # what `emidbench run` does before any stage
    return str(err.value)


def test_a_model_typo_in_a_run_config_is_named_before_any_stage(tmp_path):
    config = write_config(tmp_path, models=[{"model": "tiny-lava"}])
    msg = config_error(config)
    assert msg.startswith(f"{config}: models[0].model: model 'tiny-lava'") and "did you mean 'tiny-llava'" in msg
    config = write_config(tmp_path, models=["tiny-llava", {"model": str(tmp_path / "no-such-model")}])
    assert config_error(config) == f"{config}: models[1].model: model path {tmp_path / 'no-such-model'} does not exist"
    # A served model's name is the server's business: not checked here.
    from emidbench.pipeline import load_run_config

    load_run_config(write_config(tmp_path, models=[{"model": "gpt-4o-mini", "backend": "openai"}]))


def test_a_suite_typo_in_a_run_config_names_file_and_key(tmp_path):
    config = write_config(tmp_path, suite="paper-synthetc")
    msg = config_error(config)
    assert msg.startswith(f"{config}: suite: unknown suite 'paper-synthetc'") and "paper-synthetic" in msg


def test_run_without_a_config_asks_for_one(tmp_path):
    from emidbench.pipeline import load_run_config

    with pytest.raises(UserError, match=r"^no config: pass --config FILE"):
        load_run_config(None, {})


def test_did_you_mean_for_a_benchmark_and_a_judge(tmp_path):
    from emidbench.benchmarks import load_benchmark
    from emidbench.score.judges import make_judge

    with pytest.raises(UserError, match=r"unknown benchmark 'minii' \(did you mean 'mini'\?\)"):
        load_benchmark("minii")
    with pytest.raises(UserError, match=r"unknown judge 'gpt4' \(did you mean 'openai:gpt4'\? a judge is "
                                        r"openai:<model>, hf:<id or path> or offline\)"):
        make_judge("gpt4")
    with pytest.raises(UserError, match=r"unknown judge 'ofline' \(did you mean 'offline'\?\)"):
        make_judge("ofline")
    config = write_config(tmp_path, score={"judge": "gpt4"})
    assert config_error(config) == (f"{config}: score.judge: unknown judge 'gpt4' (did you mean 'openai:gpt4'? a "
                                    "judge is openai:<model>, hf:<id or path> or offline)")


def test_debias_and_rules_with_the_offline_judge_are_a_printed_and_recorded_note(tmp_path):
    from emidbench.score import run_score

    run = make_answered_run(tmp_path / "run", n_images=2)
    rules = tmp_path / "rule.json"
    rules.write_text(json.dumps({"conv": {"role": "Assistant", "prompt": "Rate the two answers."}}), encoding="utf-8")
    buf = io.StringIO()
    run_score(run, "m", judge="offline", debias=True, judge_rules=str(rules), console=Console(file=buf, width=300))
    note = ("--debias and --judge-rules change nothing with the offline judge: it scores word overlap with the "
            "reference, reads no prompt wording and has no position bias")
    assert f"score: note: {note}" in buf.getvalue()
    assert json.loads((run / "scores" / "m" / "score.json").read_text())["notes"] == [note]


def test_no_matching_scenario_names_a_few_not_all(make_run, image_bytes, tmp_path):
    from emidbench.eval import run_eval

    scenarios = {f"bench_s{i:02d}": [(0, image_bytes(0), "What is this?")] for i in range(62)}
    run = make_run(scenarios)
    with pytest.raises(UserError) as err:
        run_eval(run, str(tmp_path / "never-loaded"), scenarios="bench_s9*")
    msg = str(err.value)
    assert msg.startswith("no scenario matches 'bench_s9*' (closest: ")
    assert "62 scenarios in all, listed in" in msg and str(run / "shifts" / "manifest.json") in msg
    assert sum(name in msg for name in scenarios) <= 5, msg


def test_an_unknown_dtype_is_refused_before_the_model_loads(small_run, tmp_path):
    from emidbench.eval import run_eval

    # The model does not exist: had the dtype been checked after loading, that would be the error.
    with pytest.raises(UserError, match=r"unknown --dtype 'float64' \(auto, float32, float16, bfloat16\)"):
        run_eval(small_run, str(tmp_path / "no-such-model"), dtype="float64")
    assert not (small_run / "responses").exists()
    from emidbench.pipeline import load_run_config

    config = write_config(tmp_path, eval={"dtype": "float64"})
    with pytest.raises(UserError, match=r"eval.dtype: unknown --dtype 'float64'"):
        load_run_config(config)


def test_the_terminal_footer_keeps_each_note_whole():
    from emidbench.report.terminal import correlation_table, shift_table

    rows = [{"scenario": "bench", "emi": 0.5, "emid": 0.0, "emid_lo": None, "emid_hi": None, "emid_ub": 0.0,
             "rp_score": None, "win_rate": None}]
    rows += [{"scenario": f"bench_s{i}", "emi": 0.4, "emid": 0.01 * i, "emid_lo": None, "emid_hi": None,
              "emid_ub": 0.5, "rp_score": None, "win_rate": None} for i in range(30)]
    buf = io.StringIO()
    console = Console(file=buf, width=80)
    console.print(shift_table("m", rows, "bench"))
    console.print(correlation_table("m", []))
    lines = [line.strip() for line in buf.getvalue().splitlines()]
    for note in ("5 more shifts in per_shift.csv", "bold red: the 5 largest EMID (worst shifts)",
                 "no judge was run (RP, win empty)", "UB: EMID upper bound; sqrt-JSD sum: sqrt(JSD_v) + sqrt(JSD_t)",
                 "slope: least-squares EMID on UB"):
        assert note in lines, (note, buf.getvalue())


def test_per_shift_csv_has_the_true_bound_when_it_was_computed(tmp_path):
    from emidbench.report import run_report
    from emidbench.score import run_score

    run = make_answered_run(tmp_path / "run", n_images=2)
    run_score(run, "m", entropy_scaler=2.0)
    run_report(run)
    with open(run / "report" / "m" / "per_shift.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[header.index("emid_ub") + 1] == "emid_true_ub"
    with open(run / "scores" / "m" / "metrics.csv", newline="", encoding="utf-8") as f:
        metrics = {r["scenario"]: r for r in csv.DictReader(f)}
    for r in rows:
        assert float(r["emid_true_ub"]) == float(metrics[r["scenario"]]["emid_true_ub"]) >= float(r["emid_ub"])
    assert all(float(r["emid_true_ub"]) > float(r["emid_ub"]) for r in rows if r["scenario"] != "bench")
    run_score(run, "m")  # not computed: no column (as before)
    run_report(run)
    assert "emid_true_ub" not in (run / "report" / "m" / "per_shift.csv").read_text().splitlines()[0]


def test_cli_score_out_list_and_run(tmp_path):
    """Through the real CLI: `score RUN --out X` refuses in one line; `list` prints one
    line per name however narrow the pipe (bundled models included); `run` alone asks
    for --config."""
    proc = run_cli("score", tmp_path / "run", "--model", "m", "--out", tmp_path / "x")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--out is for --from-embeddings" in proc.stderr and not (tmp_path / "x").exists()

    from emidbench.catalog import catalog

    proc = run_cli("list", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    expected = []
    for kind, items in catalog().items():
        expected.append(kind)
        expected += [f"  {name:<24} {desc}".rstrip() for name, desc in items]
    assert [line.rstrip() for line in proc.stdout.splitlines()] == expected
    assert "bundled models" in expected and any(line.startswith("  tiny-llava ") for line in expected)
    assert max(map(len, expected)) > 80  # the check above would have caught a wrap

    proc = run_cli("run")
    assert proc.returncode == 2 and proc.stderr.startswith("emidbench: error: no config: pass --config FILE"), \
        proc.stderr
