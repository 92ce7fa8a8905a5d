import json
import os
import subprocess
import sys

import pytest

from emidbench.common.errors import UserError
from emidbench.common.io import JsonlAppender, atomic_write_text, iter_jsonl, read_jsonl
from emidbench.rundir import RunDir, model_slug
from emidbench.rundir.manifest import Manifest, ScenarioEntry, ShiftSpec


def _manifest():
    return Manifest(
        suite="paper-synthetic", benchmark="llava_bench_coco", seed=3, id_scenario="llava_bench_coco",
        scenarios=[
            ScenarioEntry("llava_bench_coco", "id", "none", None, None, 2, "llava_bench_coco.jsonl"),
            ScenarioEntry("llava_bench_coco_frost_3_sr_4", "synthetic", "joint", ShiftSpec("frost", 3),
                          ShiftSpec("sr", 4), 2, "llava_bench_coco_frost_3_sr_4.jsonl"),
        ],
    )


def test_manifest_round_trip_is_byte_stable(tmp_path):
    run = RunDir(tmp_path)
    run.write_manifest(_manifest())
    first = run.manifest_path.read_bytes()
    back = run.read_manifest()
    assert back.scenarios[1].visual == ShiftSpec("frost", 3)
    assert back.scenarios[1].text.severity == 4
    assert back.get("llava_bench_coco").modality == "none"
    run.write_manifest(back)
    assert run.manifest_path.read_bytes() == first
    d = json.loads(first)
    assert d["scenarios"][1]["visual"] == {"name": "frost", "severity": 3}
    assert {"suite", "benchmark", "seed", "scenarios"} <= set(d)


def test_manifest_validation_names_the_problem(tmp_path):
    run = RunDir(tmp_path)
    d = _manifest().to_json()
    d["scenarios"][1]["modality"] = "audio"
    run.shifts.mkdir(parents=True)
    run.manifest_path.write_text(json.dumps(d))
    with pytest.raises(UserError, match="unknown modality 'audio'"):
        run.read_manifest()
    d["scenarios"][1]["modality"] = "joint"
    d["id_scenario"] = "nope"
    run.manifest_path.write_text(json.dumps(d))
    with pytest.raises(UserError, match="ID scenario 'nope'"):
        run.read_manifest()


def test_missing_shifts_says_which_stage_to_run(tmp_path):
    with pytest.raises(UserError, match="emidbench shift"):
        RunDir(tmp_path).read_manifest()


def test_scenario_round_trip_and_duplicate_ids(tmp_path):
    run = RunDir(tmp_path)
    recs = [{"question_id": 0, "image": "a.png", "text": "q", "category": "conv", "reference": "r"},
            {"question_id": 1, "image": "a.png", "text": "ü 한국어", "category": "conv", "reference": "r"}]
    run.write_scenario("s", recs)
    assert run.read_scenario("s") == recs
    run.write_scenario("s", recs + [recs[0]])
    with pytest.raises(UserError, match="duplicate question_id 0"):
        run.read_scenario("s")


def test_malformed_jsonl_reports_line_number(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(UserError, match=r"x.jsonl:3: malformed JSON"):
        read_jsonl(p)


def test_image_store_is_content_addressed(tmp_path):
    run = RunDir(tmp_path)
    a = run.put_image(b"\x89PNG same bytes", "png")
    b = run.put_image(b"\x89PNG same bytes", "png")
    c = run.put_image(b"\x89PNG other bytes", "png")
    assert a == b != c
    assert sorted(p.name for p in run.images.iterdir()) == sorted({a, c})
    with pytest.raises(UserError, match="escapes"):
        run.image_path("../manifest.json")


def test_atomic_write_keeps_old_file_when_writer_dies(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old\n")
    # A writer killed mid-write: the child writes half the data through our function's
    # temp file and is SIGKILLed before the rename.
    code = (
        "import os, emidbench.common.io as r\n"
        "orig = os.replace\n"
        "def die(*a): os.kill(os.getpid(), 9)\n"
        "os.replace = die\n"
        f"r.atomic_write_text(r.Path({str(target)!r}), 'new' * 100000)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    assert target.read_text() == "old\n"


def test_appender_drops_torn_tail_and_continues(tmp_path):
    p = tmp_path / "r.jsonl"
    with JsonlAppender(p) as w:
        w.write([{"question_id": 0}, {"question_id": 1}])
    with open(p, "ab") as f:  # a writer killed mid-line
        f.write(b'{"question_id": 2, "te')
    assert [r["question_id"] for r in read_jsonl(p, allow_torn_tail=True)] == [0, 1]
    with pytest.raises(UserError, match=":3: malformed"):
        read_jsonl(p)
    with JsonlAppender(p) as w:
        w.write([{"question_id": 2}])
    assert [r["question_id"] for _, r in iter_jsonl(p)] == [0, 1, 2]


def test_model_slug():
    assert model_slug("llava-hf/llava-1.5-7b-hf") == "llava-1.5-7b-hf"
    assert model_slug("/models/my ckpt/") == "my_ckpt"
    assert model_slug("Qwen/Qwen2-VL-2B-Instruct", name="qwen 2b") == "qwen_2b"
    assert model_slug(os.path.join("a", "b", "tiny-llava")) == "tiny-llava"
    with pytest.raises(UserError):
        model_slug("///")


def test_records_are_versioned_and_read_back(tmp_path):
    from emidbench.common.errors import UserError
    from emidbench.rundir.records import RECORD_VERSION, EvalRecord, PipelineRecord

    path = tmp_path / "eval.json"
    EvalRecord(model="m", name="m", backend="imported", source="/x", files={"s": "s_m.jsonl"}).write(path)
    on_disk = json.loads(path.read_text())
    assert on_disk["version"] == RECORD_VERSION and "identity" not in on_disk  # unset fields are absent
    assert EvalRecord.read(path).imported and EvalRecord.read(tmp_path / "none.json") is None
    path.write_text(json.dumps({**on_disk, "version": RECORD_VERSION + 1}))
    with pytest.raises(UserError, match="newer than this emidbench reads"):
        EvalRecord.read(path)

    legacy = tmp_path / "pipeline.json"  # written before records were versioned: stages at the top level
    legacy.write_text(json.dumps({"shift": "abc", "eval:m": "def"}))
    rec = PipelineRecord.read(legacy)
    assert rec.is_done("shift", "abc") and not rec.is_done("shift", "other")
    rec.mark("score:m", "ghi")
    assert json.loads(legacy.read_text()) == {"version": RECORD_VERSION,
                                              "stages": {"shift": "abc", "eval:m": "def", "score:m": "ghi"}}
    legacy.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a pipeline record"):
        PipelineRecord.read(legacy)
