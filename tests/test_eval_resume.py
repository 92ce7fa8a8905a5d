"""Resume after a kill, the response cache, and what a rerun keeps or asks again."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emidbench.common.cache import EntryCache
from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import import_responses, run_eval
from emidbench.eval.backends.hf import HFBackend
from emidbench.eval.cache import ResponseCache
from emidbench.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("bench", "bench_defocus_blur_5")


def lines(path: Path) -> list[dict]:
    """The records of an answer file as a reader sees it mid-run: whole lines only."""
    if not path.exists():
        return []
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    return [json.loads(x) for x in whole.decode().splitlines() if x.strip()]


def test_sigkill_loses_at_most_the_batch_in_flight(small_run, tiny_llava_dir, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(small_run, reference)
    run_eval(reference, str(tiny_llava_dir), name="k", batch_size=1, max_new_tokens=40)
    expected = {sc: read_jsonl(RunDir(reference).responses_path("k", sc)) for sc in SCENARIOS}

    rd = RunDir(small_run)
    cmd = [sys.executable, "-m", "emidbench", "eval", str(small_run), "--model", str(tiny_llava_dir), "--name", "k",
           "--batch-size", "1", "--max-new-tokens", "40"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # kill once early in the first scenario, once in the second
    for sc, after in (("bench", 2), ("bench_defocus_blur_5", 1)):
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = rd.responses_path("k", sc)
        deadline = time.time() + 120
        while time.time() < deadline and len(lines(path)) < after and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "finished before the kill; make the run longer"
        for s in SCENARIOS:  # whole records only, no question twice, every one a finished answer
            ids = [r["question_id"] for r in lines(rd.responses_path("k", s))]
            assert len(ids) == len(set(ids))
    present = sum(len(lines(rd.responses_path("k", s))) for s in SCENARIOS)
    assert 0 < present < 12

    s = run_eval(small_run, str(tiny_llava_dir), name="k", batch_size=1, max_new_tokens=40)
    assert s.skipped == present and s.done + s.cached == 12 - present and s.cached <= 1  # at most one batch lost
    for sc in SCENARIOS:
        got = read_jsonl(rd.responses_path("k", sc))
        assert [r["question_id"] for r in got] == [0, 1, 2, 3, 4, 5]
        assert got == expected[sc]  # byte-for-byte the answers of an uninterrupted run
        assert rd.responses_path("k", sc).read_bytes() == RunDir(reference).responses_path("k", sc).read_bytes()


def test_torn_tail_and_leftover_shards_are_folded_in(small_run, tiny_llava_dir):
    rd = RunDir(small_run)
    run_eval(small_run, str(tiny_llava_dir), name="m", max_new_tokens=3)
    path = rd.responses_path("m", "bench")
    full = read_jsonl(path)
    # a killed single-process writer: a torn last line; a killed torchrun: answers in a shard
    shard = rd.responses_dir("m") / ".shards" / "bench.rank1.jsonl"
    shard.parent.mkdir()
    shard.write_text(json.dumps(full[4]) + "\n")
    path.write_text("".join(json.dumps(r) + "\n" for r in full[:3]) + json.dumps(full[3])[:25])
    s = run_eval(small_run, str(tiny_llava_dir), name="m", max_new_tokens=3)
    assert (s.skipped, s.done + s.cached) == (6 + 4, 2)
    assert read_jsonl(path) == full and not shard.exists()


def test_identical_requests_are_generated_once(make_run, image_bytes, tiny_llava_dir, monkeypatch):
    prompts = []
    generate = HFBackend._generate
    monkeypatch.setattr(HFBackend, "_generate", lambda self, images, texts: prompts.extend(texts) or
                        generate(self, images, texts))
    shared = [(2 * i + j, image_bytes(i), q) for i in range(2) for j, q in enumerate(("What color?", "How many?"))]
    run = make_run({"id": shared, "copy": shared, "shifted": [(q, image_bytes(7), t) for q, _, t in shared]})
    s = run_eval(run, str(tiny_llava_dir), name="m1", max_new_tokens=4, batch_size=3)
    assert len(prompts) == 4 + 2 and s.generated == 6  # 12 items, 6 distinct requests
    assert (s.done, s.cached) == (6, 6)
    text = {sc: [r["text"] for r in read_jsonl(RunDir(run).responses_path("m1", sc))] for sc in ("id", "copy")}
    assert text["id"] == text["copy"]
    # the same model under another name, in the same RUN: every answer from the cache, no weights loaded
    s = run_eval(run, str(tiny_llava_dir), name="m2", max_new_tokens=4)
    assert len(prompts) == 6 and (s.cached, s.generated) == (12, 0)
    assert [r["text"] for r in read_jsonl(RunDir(run).responses_path("m2", "id"))] == text["id"]
    # other settings are other requests
    run_eval(run, str(tiny_llava_dir), name="m3", max_new_tokens=5)
    assert len(prompts) == 12


def test_a_damaged_cache_entry_is_a_miss_and_is_overwritten(tmp_path):
    cache = ResponseCache(tmp_path / "responses")
    keys = [f"{i:02x}" + "0" * 62 for i in range(6)]
    for k in keys:
        cache.put(k, f"answer {k[:2]}", "prompt")
    assert len(cache) == 6 and cache.get(keys[0]) == {"text": "answer 00", "prompt": "prompt"}
    path = tmp_path / "responses" / keys[0][:2] / f"{keys[0]}.json"
    for data in (path.read_bytes()[:10], b"", b"\xff\xfe", b'["answer"]', b'{"text": 3}'):
        path.write_bytes(data)
        assert cache.get(keys[0]) is None
    cache.put(keys[0], "again", "prompt")
    assert cache.get(keys[0]) == {"text": "again", "prompt": "prompt"}
    assert cache.get("ff" + "0" * 62) is None  # absent
    # the shared store: the owner's check decides what is a hit (the judge cache's use)
    judged = EntryCache(tmp_path / "judge", valid=lambda e: e.get("reply") == "8 7")
    judged.put(keys[1], {"reply": "8 7", "judge": "j"})
    judged.put(keys[2], {"reply": "no scores", "judge": "j"})
    assert judged.get(keys[1]) == {"reply": "8 7", "judge": "j"} and judged.get(keys[2]) is None


def test_changed_settings_are_answered_again_not_mixed(small_run, tiny_llava_dir):
    rd = RunDir(small_run)
    run_eval(small_run, str(tiny_llava_dir), name="m", max_new_tokens=2)
    s = run_eval(small_run, str(tiny_llava_dir), name="m", max_new_tokens=5)
    assert (s.done, s.skipped) == (12, 0)
    recs = read_jsonl(rd.responses_path("m", "bench"))
    assert len(recs) == 6 and {r["metadata"]["max_new_tokens"] for r in recs} == {5}
    assert json.loads((rd.responses_dir("m") / "eval.json").read_text())["generation"]["max_new_tokens"] == 5
    # a changed question in the shifted data is a new request too
    questions = rd.read_scenario("bench")
    questions[0]["text"] = "What is on the left?"
    rd.write_scenario("bench", questions)
    s = run_eval(small_run, str(tiny_llava_dir), name="m", max_new_tokens=5)
    assert (s.done, s.skipped) == (1, 11)
    assert read_jsonl(rd.responses_path("m", "bench"))[0]["prompt"].endswith("What is on the left? ASSISTANT:")


def test_answers_of_another_model_are_not_overwritten(small_run, tiny_llava_dir, tmp_path, monkeypatch):
    run_eval(small_run, str(tiny_llava_dir), name="m", max_new_tokens=2)
    with pytest.raises(UserError, match="holds answers of .*pass another --name"):
        run_eval(small_run, "served", backend="openai", name="m", base_url="http://127.0.0.1:9/v1")
    src = tmp_path / "released"
    src.mkdir()
    (src / "bench_theirs.jsonl").write_text(json.dumps({"question_id": 0, "text": "a"}) + "\n")
    import_responses(src, small_run, "theirs")
    with pytest.raises(UserError, match="holds imported answers"):
        run_eval(small_run, str(tiny_llava_dir), name="theirs")
