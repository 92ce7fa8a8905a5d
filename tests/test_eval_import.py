"""`emidbench import-responses`: released `<scenario>_<model>.jsonl` answer files -> RUN/responses/."""

import json

import pytest

from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import import_responses
from emidbench.rundir import RunDir


def released(folder, name, rows):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def answer(qid, text=None):
    # the prompt is the run's question (prefix_run's): import checks that they agree
    return {"question_id": qid, "prompt": f"question {qid}", "text": text or f"a{qid}", "answer_id": f"id{qid}",
            "model_id": "llava-v1.5-7b", "metadata": {}}


@pytest.fixture
def prefix_run(make_run, image_bytes):
    """Scenario names that are prefixes of one another, as in the paper's suites."""
    qs = [(q, image_bytes(q), f"question {q}") for q in range(4)]
    return make_run({"llava_bench_coco": qs, "llava_bench_coco_frost_3": qs, "llava_bench_coco_frost_3_sr_4": qs})


def test_files_match_the_exact_scenario_and_are_put_in_question_order(tmp_path, prefix_run):
    src = tmp_path / "released"
    model = "llava-v1.5-7b"
    released(src, f"llava_bench_coco_frost_3_{model}.jsonl", [answer(q, f"frost{q}") for q in (3, 1, 0, 2)])
    released(src, f"llava_bench_coco_frost_3_sr_4_{model}.jsonl", [answer(q, f"sr{q}") for q in (0, 1)])
    released(src, f"llava_bench_coco_{model}.jsonl", [answer(q) for q in range(4)])
    released(src, "llava_bench_coco_frost_3_llava-v1.5-13b.jsonl", [answer(0)])  # another model: not touched
    released(src, f"llava_bench_in_the_wild_hard_Korean_{model}.jsonl", [answer(0)])  # not in this run
    s = import_responses(src, prefix_run, model)
    assert s.scenarios == {"llava_bench_coco": 4, "llava_bench_coco_frost_3": 4, "llava_bench_coco_frost_3_sr_4": 2}
    assert s.missing == {"llava_bench_coco_frost_3_sr_4": 2} and s.not_found == []
    assert s.ignored == [f"llava_bench_in_the_wild_hard_Korean_{model}.jsonl: no scenario "
                         "'llava_bench_in_the_wild_hard_Korean' in this run"]
    rd = RunDir(prefix_run)
    frost = read_jsonl(rd.responses_path(model, "llava_bench_coco_frost_3"))
    assert [(r["question_id"], r["text"]) for r in frost] == [(0, "frost0"), (1, "frost1"), (2, "frost2"),
                                                             (3, "frost3")]
    assert frost[0]["answer_id"] == "id0" and frost[0]["metadata"]["imported_from"].startswith("llava_bench_coco_f")
    assert [r["text"] for r in read_jsonl(rd.responses_path(model, "llava_bench_coco_frost_3_sr_4"))] == ["sr0", "sr1"]
    assert not rd.responses_dir("llava-v1.5-13b").exists()
    record = json.loads((rd.responses_dir(model) / "eval.json").read_text())
    assert record["backend"] == "imported" and record["files"]["llava_bench_coco"] == f"llava_bench_coco_{model}.jsonl"
    assert s.line().startswith("import llava-v1.5-7b: 10 answers in 3 scenarios, 2 questions without an answer")


def test_the_id_set_alias_and_string_ids_are_understood(tmp_path, make_run, image_bytes):
    from emidbench.rundir.manifest import Manifest

    run = make_run({"bench": [(0, image_bytes(0), "q0"), (1, image_bytes(1), "q1")]})
    rd = RunDir(run)
    m = rd.read_manifest()
    m.scenarios[0].extra["alias"] = "bench_English"
    rd.write_manifest(Manifest(m.suite, m.benchmark, m.seed, m.id_scenario, m.scenarios))
    src = tmp_path / "released"
    released(src, "bench_English_m.jsonl", [{"question_id": "1", "text": "one"}, {"question_id": "0", "text": "zero"}])
    s = import_responses(src, run, "m")
    assert s.scenarios == {"bench": 2}
    got = read_jsonl(rd.responses_path("m", "bench"))
    assert [(r["question_id"], r["text"], r["model_id"]) for r in got] == [(0, "zero", "m"), (1, "one", "m")]
    assert len(got[0]["answer_id"]) == 22  # made up deterministically when the file has none


def test_bad_files_are_one_line_naming_file_and_line(tmp_path, prefix_run):
    src = tmp_path / "released"
    name = "llava_bench_coco_frost_3_m.jsonl"
    released(src, name, [answer(0), "{not json"])
    with pytest.raises(UserError, match=rf"{name}:2: malformed JSON line"):
        import_responses(src, prefix_run, "m")
    released(src, name, [answer(0), answer(7)])
    with pytest.raises(UserError, match=rf"{name}:2: question_id 7 is not a question of scenario "
                                        r"llava_bench_coco_frost_3 \(4 questions\)"):
        import_responses(src, prefix_run, "m")
    released(src, name, [answer(0), answer(1), answer(0)])
    with pytest.raises(UserError, match=rf"{name}:3: question_id 0 answered twice \(first on line 1\)"):
        import_responses(src, prefix_run, "m")
    released(src, name, [answer(0), {**answer(1), "question_id": [1]}])
    with pytest.raises(UserError, match=rf"{name}:2: question_id must be a string or a number"):
        import_responses(src, prefix_run, "m")
    released(src, name, [{"question_id": 0, "answer": "x"}])
    with pytest.raises(UserError, match=rf"{name}:1: no answer text"):
        import_responses(src, prefix_run, "m")
    assert not (RunDir(prefix_run).root / "responses").exists()  # nothing written from a bad import
    with pytest.raises(UserError, match=r"no file named <scenario>_other.jsonl for a scenario of this run "
                                        r"\(e.g. llava_bench_coco_other.jsonl\)"):
        import_responses(src, prefix_run, "other")
    with pytest.raises(UserError, match="not a folder"):
        import_responses(tmp_path / "nowhere", prefix_run, "m")
    with pytest.raises(UserError, match="run `emidbench shift` first"):
        import_responses(src, tmp_path / "empty-run", "m")

