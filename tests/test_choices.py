"""Choice tasks (issue 16, items 1, 4, 5): loading `datasets` datasets with class labels and
domains, the built-in mappings of the paper's hub copies (tested on local copies in their
schema), the question template, the answer parser, accuracy / its interval / macro-F1, and
a run end to end (shift -> answers -> score -> report)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from emidbench.benchmarks import load_benchmark
from emidbench.benchmarks.choice_sets import CHOICE_SETS
from emidbench.benchmarks.choices import DEFAULT_STEM, DEFAULT_TEMPLATE, check_template, parse_answer, render_question
from emidbench.common.errors import UserError
from emidbench.score.bootstrap import resample_indices
from emidbench.score.choices import choice_metrics, macro_f1
from tests.helpers import REPO, photo_like, run_cli, write_jsonl

PACS = ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]


def pacs_like(root, n=8, domains=("photo", "sketch"), fmt="disk", name="pacs_local"):
    """A PACS-schema dataset (image, domain string, label ClassLabel) made with `datasets`."""
    import datasets

    feats = datasets.Features({"image": datasets.Image(), "domain": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=PACS)})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": photo_like(i), "path": None} for i in range(n)],
         "domain": [domains[i % len(domains)] for i in range(n)], "label": [i % len(PACS) for i in range(n)]},
        features=feats)
    if fmt == "disk":
        ds.save_to_disk(str(root / name))
        return root / name
    path = root / f"{name}.parquet"
    ds.to_parquet(str(path))
    return path


# --------------------------------------------------------------------------- loaders

@pytest.mark.parametrize("fmt", ["disk", "parquet"])
def test_a_classlabel_dataset_loads_with_its_class_names_as_options_and_its_domains(tmp_path, fmt):
    bench = load_benchmark(str(pacs_like(tmp_path, fmt=fmt)))
    assert len(bench.samples) == 8
    s = bench.samples[3]
    assert s.is_choice and s.choices == tuple(PACS)
    assert (s.question_id, s.reference, s.domain, s.text) == (3, "guitar", "sketch", DEFAULT_STEM)
    assert [x.domain for x in bench.samples[:2]] == ["photo", "sketch"]
    assert bench.samples[7].reference == PACS[0]  # label 7 % 7


def test_columns_map_other_names_and_a_row_may_carry_its_own_options(tmp_path):
    rows = [{"img": f"i{i}.jpg", "y": ["left", "right", "up"][i], "env": "lab", "opts": ["left", "right", "up"],
             "q": "Which way does the arrow point?", "question_German": "Wohin zeigt der Pfeil?"} for i in range(3)]
    for i in range(3):
        (tmp_path / f"i{i}.jpg").write_bytes(photo_like(i))
    path = write_jsonl(tmp_path / "arrows.jsonl", rows)
    bench = load_benchmark(str(path), columns="image=img,label=y,domain=env,choices=opts,text=q")
    s = bench.samples[2]
    assert (s.reference, s.domain, s.choices, s.text) == ("up", "lab", ("left", "right", "up"),
                                                          "Which way does the arrow point?")
    assert s.translations == {"German": "Wohin zeigt der Pfeil?"}  # of the stem; the options stay as they are


def test_a_label_column_of_names_without_classlabel_takes_its_sorted_names_as_options(tmp_path):
    rows = [{"image": f"i{i}.jpg", "label": lab} for i, lab in enumerate(["nv", "mel", "bkl", "nv"])]
    for i in range(4):
        (tmp_path / f"i{i}.jpg").write_bytes(photo_like(i))
    bench = load_benchmark(str(write_jsonl(tmp_path / "ham.jsonl", rows)))
    assert bench.samples[0].choices == ("bkl", "mel", "nv") and bench.samples[1].reference == "mel"


@pytest.mark.parametrize("label, message", [
    ("zebra", "row 2 (question_id 1): label 'zebra' is not one of the choices ('dog', 'cat')"),
    (5, "row 2 (question_id 1): label 5 is outside the 2 choices (0..1)"),
])
def test_a_label_outside_the_choices_is_one_line_naming_the_row(tmp_path, label, message):
    (tmp_path / "a.jpg").write_bytes(photo_like(0))
    rows = [{"image": "a.jpg", "label": "dog", "choices": ["dog", "cat"]},
            {"image": "a.jpg", "label": label, "choices": ["dog", "cat"]}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(UserError, match="row 2"):
        load_benchmark(str(path))
    r = run_cli("shift", tmp_path / "run", "-b", path, "-s", "text-noise")
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_an_unlabelled_classlabel_row_is_refused_naming_it(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [{"bytes": photo_like(0), "path": None}] * 2, "label": [1, -1]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.ClassLabel(names=["a", "b"])}))
    ds.save_to_disk(str(tmp_path / "d"))
    with pytest.raises(UserError, match=r"row 2 \(question_id 1\): label -1 is outside the 2 choices"):
        load_benchmark(str(tmp_path / "d"))


# --------------------------------------------------------------------------- built-in mappings

def _local_copy(tmp_path, hub_id):
    """A local copy of `hub_id` in the schema its card shows (CHOICE_SETS[...].verified),
    with 6 rows: (the copy's path, the label name of each row, the domain of each row)."""
    import datasets

    img = [{"bytes": photo_like(i, size=(48, 40)), "path": None} for i in range(6)]
    if hub_id == "flwrlabs/pacs" or hub_id == "flwrlabs/office-home":
        names = PACS if hub_id == "flwrlabs/pacs" else ["Alarm_Clock", "Backpack", "Batteries", "Pen", "Pencil"]
        doms = ["art_painting", "photo", "sketch", "cartoon", "photo", "photo"]
        feats = {"image": datasets.Image(), "domain": datasets.Value("string"),
                 "label": datasets.ClassLabel(names=sorted(names))}
        labels = [i % len(names) for i in range(6)]
        data = {"image": img, "domain": doms, "label": labels}
        label_names = [sorted(names)[i] for i in labels]
    elif hub_id == "wltjr1007/DomainNet":
        names = ["aircraft_carrier", "airplane", "alarm_clock"]
        doms = ["clipart", "real", "sketch", "real", "clipart", "quickdraw"]
        feats = {"image": datasets.Image(), "label": datasets.ClassLabel(names=names),
                 "domain": datasets.Value("string")}
        labels = [i % 3 for i in range(6)]
        data = {"image": img, "label": labels, "domain": doms}
        label_names = [names[i] for i in labels]
    elif hub_id == "wltjr1007/Camelyon17-WILDS":
        centers = ["train-center1", "train-center2", "val-center3"]
        feats = {"image": datasets.Image(), "label": datasets.ClassLabel(names=["normal", "tumor"]),
                 "center": datasets.ClassLabel(names=centers), "image_id": datasets.Value("uint32"),
                 "patient": datasets.Value("uint8"), "slide": datasets.Value("uint8")}
        labels, cs = [1, 0, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2]
        data = {"image": img, "label": labels, "center": cs, "image_id": list(range(6)), "patient": [4] * 6,
                "slide": [0] * 6}
        label_names, doms = [["normal", "tumor"][i] for i in labels], [centers[c] for c in cs]
    elif hub_id == "marmal88/skin_cancer":
        dx = ["melanocytic_Nevi", "melanoma", "dermatofibroma", "melanoma", "vascular_lesions", "melanocytic_Nevi"]
        doms = ["histo", "follow_up", "consensus", "confocal", "histo", "histo"]
        feats = {"image": datasets.Image(), "image_id": datasets.Value("string"),
                 "lesion_id": datasets.Value("string"), "dx": datasets.Value("string"),
                 "dx_type": datasets.Value("string"), "age": datasets.Value("float64"),
                 "sex": datasets.Value("string"), "localization": datasets.Value("string")}
        data = {"image": img, "image_id": [f"ISIC_{i:07d}" for i in range(6)], "lesion_id": [f"HAM_{i}" for i in range(6)],
                "dx": dx, "dx_type": doms, "age": [50.0] * 6, "sex": ["male"] * 6, "localization": ["back"] * 6}
        label_names = dx
    elif hub_id == "timm/nih-chest-xray-14":
        names = ["No Finding", "Atelectasis", "Effusion"]
        feats = {"image": datasets.Image(), "labels": datasets.List(datasets.ClassLabel(names=names))}
        lab = [[0], [2], [1, 2], [0], [2], [1]]  # row 3 has two findings: left out, counted
        data = {"image": img, "labels": lab}
        label_names, doms = [names[x[0]] if len(x) == 1 else None for x in lab], [None] * 6
    else:
        raise AssertionError(f"no local copy for {hub_id}")
    ds = datasets.DatasetDict({"train": datasets.Dataset.from_dict(data, features=datasets.Features(feats))})
    path = tmp_path / hub_id.replace("/", "__")
    ds.save_to_disk(str(path))
    return path, label_names, doms


@pytest.mark.parametrize("hub_id", sorted(CHOICE_SETS))
def test_each_built_in_mapping_loads_a_local_copy_in_its_schema(tmp_path, hub_id):
    spec = CHOICE_SETS[hub_id]
    path, label_names, doms = _local_copy(tmp_path, hub_id)
    bench = load_benchmark(str(path), known_as=hub_id)
    assert bench.name == spec.name
    kept = [(n, d) for n, d in zip(label_names, doms) if n is not None]
    assert len(bench.samples) == len(kept)
    for s, (name, dom) in zip(bench.samples, kept):
        assert s.is_choice and s.domain == dom
        assert s.reference.lower().replace("_", " ") == name.lower().replace("_", " ")
        if spec.choices:  # the paper's order and spelling
            assert s.choices == spec.choices
    if hub_id == "marmal88/skin_cancer":
        assert bench.samples[0].choices == tuple(sorted(set(label_names)))
        assert bench.samples[0].question_id == "ISIC_0000000"
    if hub_id == "timm/nih-chest-xray-14":
        assert bench.notes == ["1 rows with several labels left out (a choice task needs one; first: row 3)"]


def test_a_domainbed_folder_loads_as_vlcs_ships_extracted(tmp_path):
    # PTeterwak/DomainBed_EasyHard's VLCS.tar.gz, extracted: <domain>/<class>/<image>
    root = tmp_path / "VLCS"
    layout = {"Caltech101": {"bird": 2, "car": 1}, "LabelMe": {"car": 1, "person": 2}}
    for dom, classes in layout.items():
        for cls, n in classes.items():
            (root / dom / cls).mkdir(parents=True)
            for i in range(n):
                (root / dom / cls / f"{i:03d}.jpg").write_bytes(photo_like(hash((dom, cls, i)) % 1000))
    (root / "LabelMe" / "car" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    bench = load_benchmark(str(root))
    assert bench.name == "VLCS" and len(bench.samples) == 6
    assert {s.choices for s in bench.samples} == {("bird", "car", "person")}
    assert [(s.question_id, s.reference, s.domain) for s in bench.samples[:3]] == [
        ("Caltech101/bird/000.jpg", "bird", "Caltech101"), ("Caltech101/bird/001.jpg", "bird", "Caltech101"),
        ("Caltech101/car/000.jpg", "car", "Caltech101")]
    assert [s.question_id for s in load_benchmark(str(root)).samples] == [s.question_id for s in bench.samples]


def test_offline_a_hub_id_of_a_built_in_mapping_fails_in_one_line(tmp_path):
    r = run_cli("shift", tmp_path / "run", "-b", "flwrlabs/pacs", "-s", "text-noise",
                env={"HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "flwrlabs/pacs" in lines[0] and "Traceback" not in r.stderr
    r = run_cli("shift", tmp_path / "run", "-b", "flwrlabs/pcas", "-s", "text-noise",
                env={"HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 2 and "did you mean 'flwrlabs/pacs'" in r.stderr  # a near miss of a mapped id


# --------------------------------------------------------------------------- template

def test_the_default_template_is_zhang_et_al_s_wording():
    q = render_question(DEFAULT_STEM, ["dog", "cat"])
    # their data/generate_unified_input_data.py, line by line (source indentation dropped)
    assert q.splitlines() == [
        "Given the image, answer the following question using the specified format.",
        "Question: What is in this image? Choice list: ['dog', 'cat'].",
        "Please choose a choice from the list and respond with the following format:",
        "---BEGIN FORMAT TEMPLATE---",
        "Answer Choice: [Your Answer Choice Here]",
        "---END FORMAT TEMPLATE---",
        "Do not deviate from the above format. Repeat the format template for the answer."]
    icl = render_question(DEFAULT_STEM, ["dog"], with_examples=True)  # their eval_gpt_ICL.py's query
    assert icl.startswith("Given the image above, answer") and "What is in the image above?" in icl
    assert icl.endswith("\nDo not response with I'm sorry. Just pick a choice.")
    assert render_question("Q?", ["a", "b"], "Given the image: {question} {choices}", with_examples=True) == \
        "Given the image: Q? ['a', 'b']\nDo not response with I'm sorry. Just pick a choice."  # own wording kept
    assert DEFAULT_TEMPLATE.count("{choices}") == 1


@pytest.mark.parametrize("template, error", [
    ("Pick one: {question}", "no {choices}"),
    ("{question} {options}", "unknown placeholder {options}"),
    ("{question {choices}", "not a valid template"),
])
def test_a_bad_template_is_refused(template, error):
    with pytest.raises(UserError, match=error.replace("{", r"\{").replace("}", r"\}")):
        check_template(template)


# --------------------------------------------------------------------------- parser

C = ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
ANSWERS = [  # (answer, expected option or None, how)
    ("Answer Choice: [dog]", "dog", "answer_line"),  # the paper's answer line
    ("---BEGIN FORMAT TEMPLATE---\nAnswer Choice: [giraffe]\n---END FORMAT TEMPLATE---", "giraffe", "answer_line"),
    ("answer choice: 'Horse'", "horse", "answer_line"),
    ('Answer Choice: "person"', "person", "answer_line"),
    ("Answer Choice: [Your Answer Choice Here]", None, "unparsed"),  # the template parroted
    ("house", "house", "exact"),
    ("Elephant.", "elephant", "exact"),
    ("The answer is guitar", "guitar", "exact"),
    ("B", "elephant", "letter"),
    ("(c)", "giraffe", "letter"),
    ("D. guitar", "guitar", "letter"),
    ("Answer: E", "horse", "letter"),
    ("B. dog", None, "unparsed"),  # letter and name disagree
    ("A horse.", "horse", "fuzzy"),  # "A" is an article here, not option A (dog)
    ("I think this is a picture of a guitar.", "guitar", "fuzzy"),
    ("The image shows two horses in a field.", "horse", "fuzzy"),
    ("giraff", "giraffe", "fuzzy"),  # a close spelling of a short answer
    ("There is a dog next to a person.", None, "unparsed"),  # two options named
    ("It is not a dog.", None, "unparsed"),  # negated
    ("I'm sorry, but I cannot identify the object in this image.", None, "unparsed"),  # a refusal
    ("A colourful abstract painting.", None, "unparsed"),
    ("", None, "unparsed"),
]


@pytest.mark.parametrize("answer, expected, how", ANSWERS)
def test_the_parser_reads_real_looking_answers(answer, expected, how):
    p = parse_answer(answer, C)
    assert (C[p.index] if p.index is not None else None, p.how) == (expected, how)


def test_the_answer_line_needs_the_whole_option_and_a_longer_option_wins_in_a_sentence():
    # their regex, tried in class order, would read "Pencil" as "Pen"
    assert parse_answer("Answer Choice: [Pencil]", ["Pen", "Pencil"]).index == 1
    assert parse_answer("a hot dog on a plate", ["dog", "hot dog"]).index == 1
    assert parse_answer("Answer Choice: [alarm clock]", ["Alarm_Clock", "Pen"]).index == 0


# --------------------------------------------------------------------------- metrics

def _items(refs, answers, choices=("a", "b", "c")):
    return [{"question_id": i, "reference": r, "answer": a, "choices": list(choices)}
            for i, (r, a) in enumerate(zip(refs, answers))]


def test_accuracy_macro_f1_unparsed_and_chance_match_hand_computed_values():
    refs = ["a", "a", "b", "b", "c", "c"]
    answers = ["a", "b", "b", "b", "I cannot tell", "a"]
    row, readings = choice_metrics(_items(refs, answers), bootstrap=0, seed=0, label="s")
    assert row["accuracy"] == pytest.approx(3 / 6)
    # per class: a: tp1 fp1 fn1 -> 0.5; b: tp2 fp1 fn0 -> 0.8; c: tp0 fp0 fn2 -> 0
    assert row["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert row["n_unparsed"] == 1 and row["chance"] == pytest.approx(1 / 3)
    assert "accuracy_lo" not in row  # no --bootstrap, no interval
    assert [r["parsed"] for r in readings] == ["a", "b", "b", "b", None, "a"]
    from sklearn.metrics import f1_score

    preds = [r["parsed"] or "<unparsed>" for r in readings]
    assert row["macro_f1"] == pytest.approx(f1_score(refs, preds, labels=["a", "b", "c"], average="macro"))


def test_macro_f1_counts_a_predicted_class_with_no_reference_and_chance_follows_the_options():
    assert macro_f1(["a", "a"], ["a", "b"]) == pytest.approx((2 / 3 + 0.0) / 2)
    items = _items(["a", "a"], ["a", "a"], choices=("a", "b")) + [
        {"question_id": 9, "reference": "x", "answer": "x", "choices": ["x", "y", "z", "w"]}]
    assert choice_metrics(items, 0, 0, "s")[0]["chance"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)


def test_the_accuracy_interval_is_the_percentile_bootstrap_of_the_runs_seed():
    assert choice_metrics(_items(["a"] * 5, ["a"] * 5), 200, 0, "s")[0]["accuracy_lo"] == 1.0
    refs = ["a", "b", "c", "a", "b", "c", "a", "b"]
    answers = ["a", "b", "a", "a", "c", "c", "nothing", "b"]
    correct = np.array([1, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    row = choice_metrics(_items(refs, answers), 300, 7, "sc")[0]
    stats = [correct[idx].mean() for idx in resample_indices(8, 300, 7, "sc/accuracy")]
    assert (row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx(tuple(np.percentile(stats, [2.5, 97.5])))
    assert row["accuracy_lo"] < row["accuracy"] == 5 / 8 < row["accuracy_hi"]
    assert choice_metrics(_items(refs, answers), 300, 7, "sc")[0] == row  # same seed, same numbers


def test_an_open_ended_scenario_has_no_choice_metrics():
    assert choice_metrics([{"question_id": 1, "reference": "r", "answer": "a"}], 10, 0, "s") == ({}, [])


# --------------------------------------------------------------------------- end to end

def _csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_shift_answers_score_report_end_to_end_with_accuracy(tmp_path):
    data = pacs_like(tmp_path, n=7)
    suite = tmp_path / "suite.yaml"
    suite.write_text('description: "choice e2e"\nchoice_template: "Q: {question} Options: {choices}."\n'
                     "synthetic:\n  grid: separate\n  text:\n    - {name: KeyboardAug, severities: [3]}\n")
    run = tmp_path / "run"
    r = run_cli("shift", run, "-b", data, "-s", suite)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (run / "shifts" / "pacs_local.jsonl").read_text().splitlines()]
    assert lines[2]["text"] == f"Q: {DEFAULT_STEM} Options: {PACS!r}."
    assert (lines[2]["choices"], lines[2]["reference"], lines[2]["domain"]) == (PACS, "giraffe", "photo")
    shifted = [json.loads(x) for x in (run / "shifts" / "pacs_local_KeyboardAug_3.jsonl").read_text().splitlines()]
    assert all(x["text"].endswith(f"Options: {PACS!r}.") and x["choices"] == PACS for x in shifted)  # never perturbed
    assert any(not x["text"].startswith(f"Q: {DEFAULT_STEM}") for x in shifted)  # the stem was
    manifest = json.loads((run / "shifts" / "manifest.json").read_text())
    assert manifest["extra"]["choice_template"] == "Q: {question} Options: {choices}."

    # answers: ID 5/7 right (one refusal), shifted 2/7 right
    ans = tmp_path / "answers"
    id_answers = ["Answer Choice: [dog]", "elephant", "C", "I'm sorry, I can't tell.", "Answer Choice: [horse]",
                  "It's a house.", "Answer Choice: [dog]"]
    ood_answers = ["Answer Choice: [dog]", "dog", "dog", "dog", "dog", "dog", "Answer Choice: [person]"]
    for scen, answers in (("pacs_local", id_answers), ("pacs_local_KeyboardAug_3", ood_answers)):
        write_jsonl(ans / f"{scen}_oracle.jsonl", [{"question_id": i, "text": a} for i, a in enumerate(answers)])
    r = run_cli("import-responses", ans, "--model", "oracle", "--out", run)
    assert r.returncode == 0, r.stderr
    r = run_cli("score", run, "--model", "oracle", "--bootstrap", "50")
    assert r.returncode == 0, r.stderr
    assert "1 matched no option" in r.stdout + r.stderr
    metrics = {m["scenario"]: m for m in _csv(run / "scores" / "oracle" / "metrics.csv")}
    idm, ood = metrics["pacs_local"], metrics["pacs_local_KeyboardAug_3"]
    assert float(idm["accuracy"]) == pytest.approx(5 / 7) and int(idm["n_unparsed"]) == 1
    assert float(ood["accuracy"]) == pytest.approx(2 / 7)
    assert float(idm["chance"]) == pytest.approx(1 / 7)
    assert float(idm["accuracy_lo"]) <= 5 / 7 <= float(idm["accuracy_hi"])
    assert idm["emi"] != "" and ood["emid"] != ""  # EMI/EMID as for any scenario
    readings = [json.loads(x) for x in (run / "scores" / "oracle" / "choices" / "pacs_local.jsonl").read_text()
                .splitlines()]
    assert [x["how"] for x in readings][:5] == ["answer_line", "exact", "letter", "unparsed", "answer_line"]
    counts = json.loads((run / "scores" / "oracle" / "score.json").read_text())["counts"]
    assert (counts["choice_items"], counts["unparsed"]) == (14, 1)
    # the fallbacks are counted: the printed line, score.json and choices.json say how answers were read
    assert "answer line 5, exact name 6, letter 1, fuzzy 1" in " ".join((r.stdout + r.stderr).split())
    assert counts["parsed_by"] == {"answer_line": 5, "exact": 6, "letter": 1, "fuzzy": 1, "unparsed": 1}
    summary = json.loads((run / "scores" / "oracle" / "choices.json").read_text())["pacs_local"]
    assert summary["parsed_by"] == {"answer_line": 3, "exact": 1, "letter": 1, "fuzzy": 1, "unparsed": 1}
    assert summary["by_domain"] == {"photo": {"n": 4, "accuracy": 0.75}, "sketch": {"n": 3, "accuracy": 2 / 3}}
    assert summary["by_class"]["person"] == {"n": 1, "accuracy": 0.0}

    r = run_cli("report", run)
    assert r.returncode == 0, r.stderr
    assert "acc" in r.stdout and "1 matched no option" in r.stdout.replace("\n", " ")
    per = {x["scenario"]: x for x in _csv(run / "report" / "oracle" / "per_shift.csv")}
    assert float(per["pacs_local"]["accuracy"]) == pytest.approx(5 / 7)
    corr = _csv(run / "report" / "oracle" / "correlations.csv")
    assert any(c["metric"] == "emi" and c["against"] == "accuracy" for c in corr)
    page = (run / "report" / "index.html").read_text()
    assert "ID accuracy" in page and 'data-col="accuracy_lo"' in page
    assert not (run / "report" / "oracle" / "icl.png").exists()  # no in-context-example scenarios


def test_the_icl_figure_draws_accuracy_against_k_per_set_and_source():
    from emidbench.report.plots import icl_curves, icl_plot, render

    def row(name, acc):
        return {"scenario": name, "accuracy": acc, "accuracy_lo": acc - 0.1, "accuracy_hi": acc + 0.1, "chance": 0.5}

    rows = [row("cam", 0.9), row("cam_h2", 0.5), row("cam_h2_icl4_target", 0.8), row("cam_h2_icl2_target", 0.7),
            row("cam_h2_icl2_id", 0.6), {"scenario": "cam_h2_icl8_id", "accuracy": None}]
    curves = icl_curves(rows)
    assert {k: [(n, r["scenario"]) for n, r in v] for k, v in curves.items()} == {
        ("cam_h2", "id"): [(0, "cam_h2"), (2, "cam_h2_icl2_id")],
        ("cam_h2", "target"): [(0, "cam_h2"), (2, "cam_h2_icl2_target"), (4, "cam_h2_icl4_target")]}
    png, svg = render(icl_plot(rows, "cam", "m"))
    assert png.startswith(b"\x89PNG") and b"<svg" in svg
    assert icl_plot(rows[:2], "cam", "m") is None  # no ICL scenario, no figure


def test_a_choice_run_through_the_bundled_tiny_llava_counts_what_it_cannot_read(tmp_path):
    data = pacs_like(tmp_path, n=3)
    suite = tmp_path / "id.yaml"
    suite.write_text('description: "ID only"\n')
    run = tmp_path / "run"
    assert run_cli("shift", run, "-b", data, "-s", suite).returncode == 0
    r = run_cli("eval", run, "--model", REPO / "emidbench" / "assets" / "tiny-llava", "--max-new-tokens", "12")
    assert r.returncode == 0, r.stderr
    r = run_cli("score", run, "--model", "tiny-llava")
    assert r.returncode == 0, r.stderr
    m = _csv(run / "scores" / "tiny-llava" / "metrics.csv")[0]
    readings = [json.loads(x) for x in (run / "scores" / "tiny-llava" / "choices" / "pacs_local.jsonl")
                .read_text().splitlines()]
    assert len(readings) == int(m["n"]) == 3
    assert int(m["n_unparsed"]) == sum(x["parsed"] is None for x in readings)
    assert float(m["accuracy"]) == pytest.approx(sum(x["correct"] for x in readings) / 3)


def test_a_bad_choice_template_in_a_suite_names_the_file_and_line(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text('description: "x"\nchoice_template: "Pick: {question}"\n')
    r = run_cli("shift", tmp_path / "run", "-b", pacs_like(tmp_path, n=2), "-s", suite)
    assert r.returncode == 2
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "bad.yaml:2" in lines[0] and "{choices}" in lines[0]
