"""`emidbench report` on a run scored by the real score stage (offline embedder, fitted
CLUB, offline judge): the CSVs' columns and rows, the correlations against scipy on the
same numbers, the figures, determinism, empty columns for what was not computed, the
terminal table at 80 columns, and the bad inputs through the CLI."""

from __future__ import annotations

import base64
import csv
import html
import io
import os
import random
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import stats

from emidbench.common.io import atomic_write_jsonl, read_jsonl
from emidbench.report import run_report
from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest, ScenarioEntry, ShiftSpec
from emidbench.score import run_score
from tests.helpers import REPO, photo_like, run_cli

# The columns issue 7 asks for, spelled out (not imported) so a change to them fails here.
PER_SHIFT = ("scenario family modality visual_shift visual_severity text_shift text_severity n emi emi_lo emi_hi "
             "emid emid_lo emid_hi emid_ub jsd_v jsd_t jsd_y_id jsd_y_ood rp_score rp_lo rp_hi win_rate win_lo "
             "win_hi judge_failed").split()
JUDGE_COLUMNS = ["rp_score", "rp_lo", "rp_hi", "win_rate", "win_lo", "win_hi", "judge_failed"]
TEXT_COLUMNS = {"scenario", "family", "modality", "visual_shift", "text_shift"}
FIGURES = ("severity.png", "natural.png", "emid_grid.png", "emid_vs_bound.png")

ID = "bench"
N_IMAGES = 4
QUESTIONS = ["What color is the largest shape in the picture?", "Describe the scene in the image in detail."]
WORDS = "red blue green yellow circle square triangle left right top bottom large small near far".split()
# Synthetic: visual {none, defocus_blur 1, 3} and text {none, KeyboardAug 3}, with one joint
# cell; natural: a second domain and a second language. Few sets: scoring cost grows with them.
# (name, family, modality, visual, text, manifest extra)
SCENARIOS = [
    (ID, "id", "none", None, None, {}),
    (f"{ID}_defocus_blur_1", "synthetic", "visual", ShiftSpec("defocus_blur", 1), None, {}),
    (f"{ID}_defocus_blur_3", "synthetic", "visual", ShiftSpec("defocus_blur", 3), None, {}),
    (f"{ID}_KeyboardAug_3", "synthetic", "text", None, ShiftSpec("KeyboardAug", 3), {}),
    (f"{ID}_defocus_blur_3_KeyboardAug_3", "synthetic", "joint", ShiftSpec("defocus_blur", 3),
     ShiftSpec("KeyboardAug", 3), {}),
    (f"{ID}_German", "natural", "text", None, None, {"domain": None, "split": None, "language": "German"}),
    (f"{ID}_wild_easy", "natural", "visual", None, None,
     {"domain": "bench_wild", "split": "easy", "language": "English"}),
]
N_SYNTHETIC, N_NATURAL = 4, 2


def _strength(name: str) -> float:
    """How far a scenario is from the ID set (drives both inputs and answers)."""
    s = 0.0
    for part, w in (("defocus_blur_1", 1), ("defocus_blur_3", 3), ("KeyboardAug_1", 1), ("KeyboardAug_3", 3),
                    ("wild", 2), ("German", 2.5)):
        if part in name:
            s += w
    return s


def _reference(i: int, j: int) -> str:
    return (f"The {WORDS[i % 4]} {WORDS[4 + i % 3]} is on the {WORDS[7 + j % 4]}, "
            f"{WORDS[11 + (i + j) % 2]} and {WORDS[13 + i % 2]} from the other shapes.")


def build_run(root, models: dict[str, float]) -> RunDir:
    """RUN/shifts for SCENARIOS (N_IMAGES images x 2 questions each) and, per model, answers
    that drift from the reference the further the scenario is from ID (scaled by the
    model's sensitivity)."""
    rd = RunDir(root)
    entries = []
    for name, family, modality, visual, text, extra in SCENARIOS:
        records = []
        s = _strength(name)
        for i in range(N_IMAGES):
            img = Image.open(io.BytesIO(photo_like(i + (10 if "wild" in name else 0), size=(48, 40))))
            if visual:
                img = img.filter(ImageFilter.GaussianBlur(visual.severity * 0.8))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            image = rd.put_image(buf.getvalue(), "png")
            for j, q in enumerate(QUESTIONS):
                rng = random.Random(f"{name}/{i}/{j}")
                words = q.split()
                if text or "German" in name:  # typos (or a "translation") grow with the shift
                    words = [w[::-1] if rng.random() < 0.15 * s else w for w in words]
                records.append({"question_id": i * 2 + j, "image": image, "text": " ".join(words),
                                "category": "conv" if j == 0 else "detail", "reference": _reference(i, j)})
        rd.write_scenario(name, records)
        entries.append(ScenarioEntry(name, family, modality, visual, text, len(records), f"{name}.jsonl", extra))
        for model, sensitivity in models.items():
            answers = []
            for r in records:
                rng = random.Random(f"{model}/{name}/{r['question_id']}")
                p = min(0.9, 0.05 + 0.07 * sensitivity * s)
                words = [w if rng.random() > p else rng.choice(WORDS) for w in r["reference"].split()]
                answers.append({"question_id": r["question_id"], "prompt": r["text"], "text": " ".join(words),
                                "answer_id": f"{name}-{r['question_id']}", "model_id": model, "metadata": {}})
            atomic_write_jsonl(rd.responses_path(model, name), answers)
    rd.write_manifest(Manifest("test-grid", ID, 0, ID, entries))
    return rd


MODELS = {"steady": 0.6, "fragile": 1.6}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A run with both models scored (judge, bootstrap) and reported once. CLUB is fitted
    once and that estimator reused for every other scoring here (as the paper uses one
    estimator for all models): fitting is most of the scoring time."""
    rd = build_run(tmp_path_factory.mktemp("report") / "run", MODELS)
    run_score(rd.root, "steady", embedder="offline", estimator="fit-per-model", judge="offline", bootstrap=20, seed=0)
    run_score(rd.root, "fragile", embedder="offline", estimator=str(estimator(rd)), judge="offline", bootstrap=20,
              seed=0)
    run_report(rd.root)
    return rd


def estimator(rd: RunDir) -> Path:
    return rd.scores_dir("steady") / "club.pt"


@pytest.fixture(scope="module")
def unjudged_run(scored, tmp_path_factory):
    """A run with both models' answers and only `steady` scored, without judge or bootstrap
    (tests copy it before changing it)."""
    rd = build_run(tmp_path_factory.mktemp("unjudged") / "run", MODELS)
    run_score(rd.root, "steady", embedder="offline", estimator=str(estimator(scored)))
    return rd


@pytest.fixture
def unjudged(unjudged_run, tmp_path) -> RunDir:
    shutil.copytree(unjudged_run.root, tmp_path / "run")
    return RunDir(tmp_path / "run")


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def num(v: str):
    return None if v == "" else float(v)


# --------------------------------------------------------------------------- tables

def test_per_shift_csv_has_the_issue_columns_one_row_per_scenario_and_the_scores(scored):
    for m in MODELS:
        header, rows = read_csv(scored.report_dir(m) / "per_shift.csv")
        assert header == PER_SHIFT
        assert [r["scenario"] for r in rows] == [s[0] for s in SCENARIOS]  # the ID row included, manifest order
        _, metrics = read_csv(scored.scores_dir(m) / "metrics.csv")
        by_name = {r["scenario"]: r for r in metrics}
        for r in rows:
            for c in PER_SHIFT:
                if c not in TEXT_COLUMNS and r[c] != "":
                    float(r[c])  # a number or empty: no "nan", "None", "-" placeholders
            for c in ("n", "emi", "emid", "emid_ub", "jsd_v", "jsd_t", "rp_score", "win_rate", "win_hi"):
                assert r[c] == by_name[r["scenario"]][c], (r["scenario"], c)
            assert r["n"] == str(2 * N_IMAGES) and r["judge_failed"] == "0"
        idr = rows[0]
        assert (idr["family"], idr["modality"], idr["emid"]) == ("id", "none", "0.0")
        joint = next(r for r in rows if r["scenario"] == f"{ID}_defocus_blur_3_KeyboardAug_3")
        assert (joint["visual_shift"], joint["visual_severity"], joint["text_shift"], joint["text_severity"]) == \
               ("defocus_blur", "3", "KeyboardAug", "3")
        wild = next(r for r in rows if r["scenario"] == f"{ID}_wild_easy")
        assert (wild["visual_shift"], wild["text_shift"], wild["visual_severity"]) == ("bench_wild_easy", "", "")
        german = next(r for r in rows if r["scenario"] == f"{ID}_German")
        assert (german["visual_shift"], german["text_shift"]) == ("", "German")


def test_summary_has_one_row_per_model_with_id_scores_means_and_the_worst_shift(scored):
    header, rows = read_csv(scored.root / "report" / "summary.csv")
    assert [r["model"] for r in rows] == sorted(MODELS)
    assert header[:2] == ["model", "id_scenario"]
    for s in rows:
        _, per = read_csv(scored.report_dir(s["model"]) / "per_shift.csv")
        shifts = [r for r in per if r["scenario"] != ID]
        assert s["id_emi"] == per[0]["emi"] and s["id_rp_score"] == per[0]["rp_score"]
        assert s["worst_by_emid"] == max(shifts, key=lambda r: float(r["emid"]))["scenario"]
        assert s["worst_by_rp"] == min(shifts, key=lambda r: float(r["rp_score"]))["scenario"]
        syn = [float(r["emid"]) for r in shifts if r["family"] == "synthetic"]
        assert float(s["mean_emid_synthetic"]) == pytest.approx(np.mean(syn))
        text = [float(r["emi"]) for r in shifts if r["modality"] == "text"]
        assert float(s["mean_emi_text"]) == pytest.approx(np.mean(text))
    # The fragile model's answers drift more under shift: the table should say so.
    by = {r["model"]: r for r in rows}
    assert float(by["fragile"]["mean_rp_score_synthetic"]) < float(by["steady"]["mean_rp_score_synthetic"])


# --------------------------------------------------------------------------- correlations

def _pairs_from_csv(per: list[dict], family: str, metric: str, against: str):
    rows = [r for r in per if family == "all" or r["family"] in (family, "id")]
    if metric == "emid":
        rows = [r for r in rows if r["scenario"] != ID]

    def value(r, k):
        if k == "sqrt_jsd_v+sqrt_jsd_t":
            return np.sqrt(float(r["jsd_v"])) + np.sqrt(float(r["jsd_t"]))
        return num(r[k])

    pts = [(value(r, metric), value(r, against)) for r in rows]
    return np.array([p for p in pts if None not in p], dtype=float).T


def test_correlations_match_scipy_and_the_slope_matches_polyfit(scored):
    pairs = {("emi", "rp_score"), ("emi", "win_rate"), ("emid", "emid_ub"), ("emid", "jsd_v"), ("emid", "jsd_t"),
             ("emid", "sqrt_jsd_v+sqrt_jsd_t")}
    everything = []
    for m in sorted(MODELS):
        _, per = read_csv(scored.report_dir(m) / "per_shift.csv")
        _, corr = read_csv(scored.report_dir(m) / "correlations.csv")
        everything += corr
        assert {(c["family"], c["metric"], c["against"]) for c in corr} == \
               {(f, a, b) for f in ("all", "synthetic", "natural") for a, b in pairs}
        checked = 0
        for c in corr:
            a, b = _pairs_from_csv(per, c["family"], c["metric"], c["against"])
            assert int(c["n"]) == len(a), c
            if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
                assert c["pearson_r"] == "" and c["note"], c
                continue
            pr, sr = stats.pearsonr(a, b), stats.spearmanr(a, b)
            assert float(c["pearson_r"]) == pytest.approx(pr.statistic, abs=1e-9)
            assert float(c["pearson_p"]) == pytest.approx(pr.pvalue, rel=1e-6, abs=1e-12)
            assert float(c["spearman_rho"]) == pytest.approx(sr.statistic, abs=1e-9)
            assert float(c["spearman_p"]) == pytest.approx(sr.pvalue, rel=1e-6, abs=1e-12)
            if (c["metric"], c["against"]) == ("emid", "emid_ub"):
                slope, intercept = np.polyfit(b, a, 1)
                assert float(c["slope"]) == pytest.approx(slope) and float(c["intercept"]) == pytest.approx(intercept)
            else:
                assert c["slope"] == ""
            checked += 1
        assert checked >= 10  # all but the natural EMID pairs (2 points) on this run
        n = {(c["family"], c["metric"]): int(c["n"]) for c in corr if c["against"] in ("rp_score", "emid_ub")}
        assert n == {("all", "emi"): len(SCENARIOS), ("all", "emid"): len(SCENARIOS) - 1,
                     ("synthetic", "emi"): N_SYNTHETIC + 1, ("synthetic", "emid"): N_SYNTHETIC,
                     ("natural", "emi"): N_NATURAL + 1, ("natural", "emid"): N_NATURAL}
    _, top = read_csv(scored.root / "report" / "correlations.csv")
    assert top == everything  # the run-wide file is the models' files together


# --------------------------------------------------------------------------- figures

def test_every_figure_is_a_valid_png_of_sane_size(scored):
    paths = [scored.report_dir(m) / f for m in MODELS for f in FIGURES] + [scored.root / "report" / "emid_vs_bound.png"]
    for p in paths:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG"
            assert 600 <= im.width <= 4000 and 300 <= im.height <= 3000, (p.name, im.size)
            # Not a blank canvas: a drawn figure has many distinct colours.
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50, p.name


def test_a_second_report_writes_the_same_bytes(scored, tmp_path):
    files = sorted(p for p in (scored.root / "report").rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".csv", ".png", ".html"}
    before = {p: p.read_bytes() for p in files}
    run_report(scored.root)
    assert sorted(p for p in (scored.root / "report").rglob("*") if p.is_file()) == files
    changed = [p.name for p in files if p.read_bytes() != before[p]]
    assert changed == []


# --------------------------------------------------------------------------- what was not computed

def test_without_judge_or_bootstrap_those_columns_are_empty_and_figures_adapt(unjudged):
    rd = unjudged
    run_report(rd.root)
    header, rows = read_csv(rd.report_dir("steady") / "per_shift.csv")
    assert header == PER_SHIFT
    for r in rows:
        assert all(r[c] == "" for c in JUDGE_COLUMNS + ["emi_lo", "emi_hi", "emid_lo", "emid_hi"]), r["scenario"]
        assert r["emi"] != "" and r["emid_ub"] != ""
    _, corr = read_csv(rd.report_dir("steady") / "correlations.csv")
    judged = [c for c in corr if c["against"] in ("rp_score", "win_rate")]
    assert judged and all(c["n"] == "0" and c["pearson_r"] == "" and c["note"] for c in judged)
    _, summary = read_csv(rd.root / "report" / "summary.csv")
    assert [s["model"] for s in summary] == ["steady"]  # fragile has answers but no scores
    assert summary[0]["id_rp_score"] == "" and summary[0]["worst_by_rp"] == ""
    # EMI-only figures are still drawn.
    for f in FIGURES:
        assert (rd.report_dir("steady") / f).is_file(), f


def test_a_figure_without_data_is_not_left_over_from_an_earlier_report(unjudged):
    rd = unjudged
    run_report(rd.root)
    assert (rd.report_dir("steady") / "natural.png").is_file()
    # The same run without its natural scenarios (manifest and scores): no natural figure.
    m = rd.read_manifest()
    m.scenarios = [s for s in m.scenarios if s.family != "natural"]
    rd.write_manifest(m)
    metrics = rd.scores_dir("steady") / "metrics.csv"
    header, rows = read_csv(metrics)
    keep = {s.name for s in m.scenarios}
    with open(metrics, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header, lineterminator="\n")
        w.writeheader()
        w.writerows(r for r in rows if r["scenario"] in keep)
    run_report(rd.root)
    assert not (rd.report_dir("steady") / "natural.png").exists()
    assert (rd.report_dir("steady") / "emid_grid.png").is_file()
    _, per = read_csv(rd.report_dir("steady") / "per_shift.csv")
    assert len(per) == len(keep)


# --------------------------------------------------------------------------- the terminal

def test_terminal_table_fits_80_columns_sorted_by_emid_with_correlations_beneath(scored):
    res = run_cli("report", scored.root, "--model", "fragile", env={"COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    _, per = read_csv(scored.report_dir("fragile") / "per_shift.csv")
    shifts = sorted((r for r in per if r["scenario"] != ID), key=lambda r: -float(r["emid"]))
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{ID} (ID)"))
    shown = [line.split()[0] for line in lines[start + 1:start + 1 + len(shifts) + 1] if line.strip()]
    # Names lose the ID prefix: defocus_blur_3_KeyboardAug_3, wild_easy_German, ...
    assert shown[:len(shifts)] == [r["scenario"][len(ID) + 1:] for r in shifts]
    corr_at = next(i for i, line in enumerate(lines) if "correlations across scenarios" in line)
    assert corr_at > start
    assert lines[corr_at + 3].split()[:4] == ["all", "EMI", "vs", "RP"]  # title, header, rule, first row
    assert any(line.split()[:3] == ["EMID", "vs", "UB"] for line in lines[corr_at:])


# --------------------------------------------------------------------------- bad input

def _one_line_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("emidbench: error:"), err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_missing_stages_say_which_stage_to_run(unjudged, tmp_path):
    _one_line_error(run_cli("report", tmp_path / "nowhere"), "no such run directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(run_cli("report", empty), "emidbench shift")
    shifts_only = tmp_path / "shifts-only"
    shutil.copytree(unjudged.shifts, shifts_only / "shifts")
    _one_line_error(run_cli("report", shifts_only), "emidbench eval")
    shutil.rmtree(unjudged.root / "scores")
    _one_line_error(run_cli("report", unjudged.root), "emidbench score", "fragile")


def test_a_model_without_scores_is_named_with_the_scored_ones(scored):
    _one_line_error(run_cli("report", scored.root, "--model", "nobody"), "'nobody'", "fragile, steady",
                    "emidbench score")


def test_scores_against_different_id_sets_are_refused(unjudged, scored):
    rd = unjudged
    run_score(rd.root, "fragile", embedder="offline", estimator=str(estimator(scored)), id_scenario=f"{ID}_German")
    _one_line_error(run_cli("report", rd.root), "different ID sets", f"fragile: {ID}_German", f"steady: {ID}")
    # Either alone is fine: each is reported against its own ID set.
    assert run_cli("report", rd.root, "--model", "fragile").returncode == 0
    _, rows = read_csv(rd.report_dir("fragile") / "per_shift.csv")
    assert next(r for r in rows if r["scenario"] == f"{ID}_German")["emid"] == "0.0"
    # Scores whose record of their ID set is lost are still checked: EMID is 0 only there.
    (rd.scores_dir("fragile") / "score.json").unlink()
    _one_line_error(run_cli("report", rd.root, "--model", "fragile"), "another ID set", f"EMID of {ID} is")


def test_scores_of_other_shifted_data_are_refused(unjudged):
    rd = unjudged
    # `emidbench shift` rerun with another limit after scoring: the ID set has fewer questions.
    m = rd.read_manifest()
    rd.write_scenario(ID, rd.read_scenario(ID)[:4])
    m.scenarios[0].n = 4
    rd.write_manifest(m)
    _one_line_error(run_cli("report", rd.root), f"scenario {ID}", "8 questions", "has 4", "rerun `emidbench score`")
    # ... or with another suite: a scenario the scores do not know.
    m.scenarios[0].n = 8
    m.scenarios.append(ScenarioEntry(f"{ID}_frost_5", "synthetic", "visual", ShiftSpec("frost", 5), None, 8,
                                     f"{ID}_frost_5.jsonl"))
    rd.write_manifest(m)
    _one_line_error(run_cli("report", rd.root), f"{ID}_frost_5", "rerun `emidbench score`")


def test_a_damaged_metrics_table_is_one_line(unjudged):
    metrics = unjudged.scores_dir("steady") / "metrics.csv"
    lines = metrics.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    row = lines[1].rstrip("\n").split(",")
    row[header.index("n")] = "nan"  # a count that is not one
    metrics.write_text(lines[0] + ",".join(row) + "\n" + "".join(lines[2:]), encoding="utf-8")
    _one_line_error(run_cli("report", unjudged.root), f"{metrics}:2", "column n is not a count")
    metrics.write_bytes(b"\xff\xfe" + metrics.read_bytes())  # not UTF-8
    _one_line_error(run_cli("report", unjudged.root), "cannot read the metrics table")


def test_a_shift_without_answers_is_not_counted_and_is_named(unjudged, scored):
    import io

    from rich.console import Console

    rd = unjudged
    shifted = [s.name for s in rd.read_manifest().scenarios if s.name != ID]
    rd.responses_path("steady", shifted[0]).unlink()
    run_score(rd.root, "steady", embedder="offline", estimator=str(estimator(scored)))
    buf = io.StringIO()
    run_report(rd.root, console=Console(file=buf, width=80))
    _, summary = read_csv(rd.root / "report" / "summary.csv")
    assert summary[0]["n_shifts"] == str(len(shifted) - 1)
    assert "1 without scores (no answers) at the end" in " ".join(buf.getvalue().split())


# --------------------------------------------------------------------------- the page (RUN/report/index.html)

class PageParser(HTMLParser):
    """The page's tables (id -> header data-col list, rows as (tr attrs, [td attrs + text])),
    every src/href, and the example cells."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.example_cells: list[dict] = []
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for k in ("src", "href"):
            if k in a:
                self.urls.append((tag, k, a[k]))
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"anon{len(self.tables)}",
                                                 {"head": [], "rows": [], "class": a.get("class", "")})
        elif tag == "th" and self._table is not None:
            self._table["head"].append(a)
        elif tag == "tr" and self._table is not None:
            self._row = (a, [])
        elif tag == "td" and self._row is not None:
            self._cell = dict(a, text="")
            self._row[1].append(self._cell)
        elif tag == "div" and "cell" in (a.get("class") or "").split() and a.get("data-scenario"):
            self.example_cells.append(a)
        elif tag == "img" and self.example_cells and a.get("alt") == self.example_cells[-1]["data-scenario"]:
            self.example_cells[-1]["img"] = a["src"]

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row[1]:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


@pytest.fixture(scope="module")
def reported(scored, tmp_path_factory) -> RunDir:
    """A copy of the scored run reported for both models (other tests report `scored`
    again for one model, which rewrites its page)."""
    root = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(scored.root, root)
    run_report(root)
    return RunDir(root)


def parse_page(path: Path) -> tuple[str, PageParser]:
    text = path.read_text(encoding="utf-8")
    p = PageParser()
    p.feed(text)
    return text, p


def test_the_page_table_has_one_row_per_scenario_with_the_values_of_per_shift_csv(reported):
    text, page = parse_page(reported.root / "report" / "index.html")
    for i, m in enumerate(sorted(MODELS)):  # models in the order reported: sorted
        header, per = read_csv(reported.report_dir(m) / "per_shift.csv")
        table = page.tables[f"shifts-{i}"]
        assert [tr["data-scenario"] for tr, _ in table["rows"]] == [r["scenario"] for r in per]
        computed = [c for c in header if any(r[c] != "" for r in per)]
        cis = {c for c in computed if c.endswith(("_lo", "_hi"))}
        assert {"emid_lo", "rp_lo", "win_hi"} <= cis  # this run has judge and bootstrap
        # Every computed column is a header (a CI pair as one range column, named by its lo).
        assert [h["data-col"] for h in table["head"]] == [c for c in computed if not c.endswith("_hi")]
        for (tr, cells), r in zip(table["rows"], per):
            by_col = {c["data-col"]: c for c in cells}
            for c in computed:
                if c.endswith("_hi"):
                    assert by_col[c[:-3] + "_lo"]["data-hi"] == r[c], (r["scenario"], c)
                elif c.endswith("_lo"):
                    assert by_col[c]["data-lo"] == r[c] == by_col[c]["data-v"], (r["scenario"], c)
                    lo, hi = r[c], r[c[:-3] + "_hi"]
                    shown = by_col[c]["text"]
                    assert shown.startswith("[") and shown.endswith("]"), shown
                    assert [float(x) for x in shown[1:-1].split(",")] == pytest.approx(
                        [float(lo), float(hi)], abs=0.051), (shown, lo, hi)
                else:
                    assert by_col[c]["data-v"] == r[c], (r["scenario"], c)
            assert (tr["data-family"], tr["data-modality"]) == (r["family"], r["modality"])
        # The worst rows: the largest EMID, as many as the terminal marks (a quarter, at most 5).
        shifts = sorted((r for r in per if r["scenario"] != ID), key=lambda r: -float(r["emid"]))
        worst = [tr["data-scenario"] for tr, _ in table["rows"] if "worst" in tr["class"].split()]
        assert sorted(worst) == sorted(r["scenario"] for r in shifts[:max(1, min(5, len(shifts) // 4))])


def test_the_page_is_self_contained_marks_proxies_and_compares_the_models(reported):
    text, page = parse_page(reported.root / "report" / "index.html")
    assert "link" not in page.tags and "iframe" not in page.tags
    # Every src is inline data; every href an anchor on the page.
    assert page.urls and all(v.startswith("data:") for t, k, v in page.urls if k == "src")
    assert all(v.startswith("#") for t, k, v in page.urls if k == "href")
    assert "http://" not in text and "https://" not in text
    # One figure per drawn PNG (each model's four, and the all-models scatter), as SVG.
    figures = [v for t, k, v in page.urls if v.startswith("data:image/svg+xml;base64,")]
    assert len(figures) == len(MODELS) * len(FIGURES) + 1
    for uri in figures:
        svg = base64.b64decode(uri.split(",", 1)[1])
        assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg and b"<dc:date>" not in svg
    # The offline embedder and judge are proxies, and say so for each model.
    assert text.count('<span class="badge proxy">PROXY</span>') == 2 * len(MODELS)
    assert 'id="proxy-banner"' in text
    # Two models: one comparison row per scenario, a cell per model.
    comp = page.tables["compare-emid"]
    assert [tr["data-scenario"] for tr, _ in comp["rows"]] == [s[0] for s in SCENARIOS]
    for tr, cells in comp["rows"]:
        assert len(cells) == 1 + len(MODELS)
        for m, c in zip(sorted(MODELS), cells[1:]):
            _, per = read_csv(reported.report_dir(m) / "per_shift.csv")
            assert c["data-v"] == next(r["emid"] for r in per if r["scenario"] == tr["data-scenario"])
    assert "compare-rp_score" in page.tables


def _judge_scores(rd: RunDir, model: str, scenario: str) -> dict:
    records = read_jsonl(rd.scores_dir(model) / "judge" / f"{scenario}.jsonl")
    return {str(r["question_id"]): r["scores"][1] for r in records}


def test_the_examples_show_downscaled_thumbnails_and_the_largest_judge_drops(reported):
    text, page = parse_page(reported.root / "report" / "index.html")
    shown = [c["data-scenario"] for c in page.example_cells]
    # A gallery per single-modality type: the clean ID cell beside each severity.
    for name in (f"{ID}_defocus_blur_1", f"{ID}_defocus_blur_3", f"{ID}_KeyboardAug_3", f"{ID}_German",
                 f"{ID}_wild_easy"):
        assert name in shown, name
    assert f"{ID}_defocus_blur_3_KeyboardAug_3" not in shown  # joint: a combination of the galleries above
    for c in page.example_cells:
        data = base64.b64decode(c["img"].split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG" and max(im.size) <= 160
    # The defocus_blur gallery holds the item whose judge score dropped most (mean over models).
    scores = {(m, k): _judge_scores(reported, m, f"{ID}_defocus_blur_{k}" if k else ID) for m in MODELS
              for k in (0, 1, 3)}
    drops = {q: np.mean([scores[m, 0][q] - min(scores[m, 1][q], scores[m, 3][q]) for m in MODELS])
             for q in scores["steady", 0]}
    biggest = max(drops, key=lambda q: (drops[q], -int(q)))
    section = text[text.index("defocus_blur (visual shift)"):text.index("KeyboardAug (text shift)")]
    ref = next(r["reference"] for r in reported.read_scenario(ID) if str(r["question_id"]) == biggest)
    assert html.escape(ref) in section
    # The perturbed question has its changed words marked against the clean one.
    keyboard = text[text.index("KeyboardAug (text shift)"):text.index("languages on the ID images")]
    assert "<ins>" in keyboard


def test_without_judge_or_bootstrap_the_page_leaves_those_columns_out(unjudged):
    # An answer lost after scoring: the examples (first questions, no judge) say so.
    answers = unjudged.responses_path("steady", f"{ID}_defocus_blur_1")
    lines = answers.read_text(encoding="utf-8").splitlines(keepends=True)
    answers.write_text("".join(lines[1:]), encoding="utf-8")
    run_report(unjudged.root)
    text, page = parse_page(unjudged.root / "report" / "index.html")
    cols = [h["data-col"] for h in page.tables["shifts-0"]["head"]]
    for c in JUDGE_COLUMNS + ["emi_lo", "emid_lo"]:
        assert c not in cols, c
    assert {"emi", "emid", "emid_ub", "jsd_v"} <= set(cols)
    assert "none: RP and win-rate columns are absent" in text and "CI columns are absent" in text
    assert "compare-emid" not in page.tables  # one model scored: nothing to compare
    assert "judge: answer" not in text  # no judge scores under the examples' answers
    assert text.count("no answer (missing)") == 1


def _fake_browser(tmp_path) -> tuple[dict, Path]:
    """$BROWSER as a script that records the address it was asked to open."""
    log = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{log}"\n', encoding="utf-8")
    script.chmod(0o755)
    return {"BROWSER": str(script)}, log


def test_open_opens_the_page_or_prints_its_path_without_a_browser(unjudged, tmp_path):
    env, log = _fake_browser(tmp_path)
    res = run_cli("report", unjudged.root, "--open", env=env)
    assert res.returncode == 0, res.stderr
    page = (unjudged.root / "report" / "index.html").resolve()
    assert log.read_text(encoding="utf-8") == page.as_uri()
    # No browser at all (no $BROWSER, no display, nothing on PATH): the path, exit 0.
    bare = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")}
    bare["PATH"] = str(tmp_path / "empty")
    res = subprocess.run([sys.executable, "-m", "emidbench", "report", str(unjudged.root), "--open"], cwd=REPO,
                         env=bare, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"no web browser found; open {page.as_uri()} yourself" in " ".join(res.stdout.split())


# --------------------------------------------------------------------------- the page in a real browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser_page(tmp_path):
    """A headless Debian Chromium page at 1280x800 driven by playwright, with a fresh
    profile (user data dir) in the test's tmp dir, recording console errors and every
    request."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); scripts/install.sh installs it "
                    "where apt-get is available")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                   "'.[test]')")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                        args=CHROMIUM_FLAGS, headless=True,
                                                        viewport={"width": 1280, "height": 800})
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.errors, page.requests = [], []
        page.on("console", lambda m: page.errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("request", lambda r: page.requests.append(r.url))
        try:
            yield page
        finally:
            browser.close()


def _column(page, table: str, col: str) -> list[str]:
    return page.eval_on_selector_all(f"#{table} tbody tr:not([hidden]) td[data-col={col}]",
                                     "tds => tds.map(td => td.getAttribute('data-v'))")


def test_the_page_in_headless_chromium_sorts_filters_and_shows_every_figure(reported, browser_page, tmp_path):
    page = browser_page
    path = reported.root / "report" / "index.html"
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    # Nothing but the page itself was requested (figures and thumbnails are inline data).
    assert [u for u in page.requests if not u.startswith("data:")] == [path.resolve().as_uri()]
    assert page.errors == []
    # Every figure and thumbnail decoded.
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.alt])")
    assert len(images) > len(MODELS) * len(FIGURES)
    assert all(done and width > 0 for done, width, _ in images), [a for d, w, a in images if not (d and w > 0)]

    # Sorting: a click on the EMID header orders the rows by it, a second click reverses.
    before = _column(page, "shifts-0", "scenario")
    page.click("#shifts-0 th[data-col=emid]")
    emid = [float(v) for v in _column(page, "shifts-0", "emid")]
    assert emid == sorted(emid) and len(emid) == len(SCENARIOS)
    after = _column(page, "shifts-0", "scenario")
    assert after != before and sorted(after) == sorted(before)
    page.click("#shifts-0 th[data-col=emid]")
    assert [float(v) for v in _column(page, "shifts-0", "emid")] == sorted(emid, reverse=True)
    page.click("#shifts-0 th[data-col=scenario]")
    names = _column(page, "shifts-0", "scenario")
    assert names == sorted(names, key=str.lower)

    # Filters hide rows: by family, then by name within it.
    controls = ".controls[data-for=shifts-0]"
    page.select_option(f"{controls} select[data-filter=family]", "natural")
    assert sorted(_column(page, "shifts-0", "scenario")) == sorted(s[0] for s in SCENARIOS if s[1] == "natural")
    page.select_option(f"{controls} select[data-filter=family]", "")
    page.fill(f"{controls} input[data-filter=name]", "defocus")
    assert sorted(_column(page, "shifts-0", "scenario")) == sorted(s[0] for s in SCENARIOS if "defocus" in s[0])
    assert page.inner_text(f"{controls} .count") == f"3 of {len(SCENARIOS)} rows shown"
    page.fill(f"{controls} input[data-filter=name]", "")
    assert len(_column(page, "shifts-0", "scenario")) == len(SCENARIOS)

    # A laptop-sized screenshot, kept as the test's artefact.
    shot = tmp_path / "report-1280x800.png"
    page.goto(path.resolve().as_uri())
    page.screenshot(path=str(shot))
    with Image.open(shot) as im:
        assert im.size == (1280, 800)
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50  # not a blank page
    assert page.errors == []


# --------------------------------------------------------------------------- what the figures show (issue 19)

def _row(name, family, modality, visual=None, vsev=None, text=None, tsev=None, emi=0.5, rp=80.0, ub=1.0, ci=True):
    from emidbench.report.tables import PER_SHIFT_COLUMNS

    r = dict.fromkeys(PER_SHIFT_COLUMNS)
    r.update(scenario=name, family=family, modality=modality, visual_shift=visual, visual_severity=vsev,
             text_shift=text, text_severity=tsev, n=8, emi=emi, emid=0.5 - emi, emid_ub=ub, rp_score=rp)
    if ci:
        r.update(emi_lo=emi - 0.1, emi_hi=emi + 0.1, rp_lo=rp - 5, rp_hi=rp + 5)
    return r


def _figure_rows() -> list[dict]:
    rows = [_row(ID, "id", "none")]
    for i, k in enumerate((1, 3, 5)):
        rows.append(_row(f"{ID}_frost_{k}", "synthetic", "visual", "frost", k, emi=0.4 - 0.05 * i, ub=1 + i))
    for i, k in enumerate((4, 7)):
        rows.append(_row(f"{ID}_sr_{k}", "synthetic", "text", text="sr", tsev=k, emi=0.3 - 0.1 * i, ub=1.5 + i))
    for lang in ("German", "Korean"):
        rows.append(_row(f"{ID}_{lang}", "natural", "text", text=lang, emi=0.2, ub=2.2))
        for split in ("hard", "easy", "normal"):  # not in reading order, on purpose
            rows.append(_row(f"{ID}_wild_{split}_{lang}", "natural", "joint", visual=f"wild_{split}", text=lang,
                             emi=0.1, ub=2.5))
    for split in ("hard", "easy", "normal"):
        rows.append(_row(f"{ID}_wild_{split}", "natural", "visual", visual=f"wild_{split}", emi=0.15, ub=2.4))
    return rows


def _joining_lines(ax) -> list:
    """Lines drawn through points at two or more x positions (markers, error bars and
    vertical separators are not)."""
    return [line for line in ax.get_lines()
            if line.get_linestyle() not in ("None", "none", " ", "") and len(set(line.get_xdata())) > 1]


def test_severity_has_a_panel_per_shift_type_on_its_own_scale_with_legends_and_no_joining_lines():
    import matplotlib.pyplot as plt

    from emidbench.report import plots

    fig = plots.severity_plot(_figure_rows(), ID, "m")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 * 2  # (RP, EMI) x (frost, sr)
    ticks = sorted({tuple(ax.get_xticks()) for ax in axes})
    assert ticks == [(0, 1, 3, 5), (0, 4, 7)]  # each type's own severities, not one shared axis
    for ax in axes:
        assert ax.get_legend() is not None, ax.get_title()
        assert _joining_lines(ax) == [], ax.get_title()
        assert any(getattr(c, "has_yerr", False) for c in ax.containers), ax.get_title()  # CIs drawn
    plt.close(fig)


def test_natural_orders_domains_id_easy_normal_hard_with_ordinal_colours_cis_and_no_lines():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    from emidbench.report import plots

    fig = plots.natural_plot(_figure_rows(), ID, "m")
    for ax in fig.axes:
        legend = ax.get_legend()
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels == ["ID images", "wild_easy", "wild_normal", "wild_hard"]
        assert _joining_lines(ax) == []
        bars = [c for c in ax.containers if getattr(c, "has_yerr", False)]
        assert len(bars) == 4
        # Ordinal: the colours' lightness changes monotonically from ID to hard.
        lum = [np.dot(to_rgb(c.lines[0].get_color()), (0.299, 0.587, 0.114)) for c in bars]
        assert lum == sorted(lum) or lum == sorted(lum, reverse=True), lum
    plt.close(fig)


def test_bound_plot_fits_over_the_data_only_and_draws_y_equals_x():
    import matplotlib.pyplot as plt

    from emidbench.report import plots

    rows = _figure_rows()
    fig = plots.bound_plot({"m": rows}, ID)
    ax = fig.axes[0]
    ub = [r["emid_ub"] for r in rows if r["scenario"] != ID]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
    identity = [line for line in lines if np.allclose(line.get_xdata(), line.get_ydata())]
    assert len(identity) == 1 and identity[0].get_linestyle() == "--"
    fit = [line for line in lines if line not in identity]
    assert len(fit) == 1
    assert min(fit[0].get_xdata()) == pytest.approx(min(ub)) and max(fit[0].get_xdata()) == pytest.approx(max(ub))
    assert "scale-adjusted" not in ax.get_xlabel() and "JSD" in ax.get_xlabel()  # the bound, spelled out
    assert any("y = x" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)
