"""torchrun sharding, for real: 2 CPU processes with the gloo backend give what 1 process gives."""

import json
import os
import subprocess
import sys
from pathlib import Path

from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.eval.sharding import Dist, take_shard
from emidbench.rundir import RunDir
from emidbench.rundir.answers import merge_answers

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("bench", "bench_defocus_blur_5")


def torchrun(run, model, name, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "emidbench", "eval", str(run), "--model", str(model), "--name", name,
                           "--max-new-tokens", "6", "--batch-size", "2", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_two_torchrun_processes_equal_one(small_run, tiny_llava_dir, tmp_path):
    rd = RunDir(small_run)
    # the reference: one process, its own cache (so the sharded run below cannot reuse its answers)
    run_eval(small_run, str(tiny_llava_dir), name="single", max_new_tokens=6, batch_size=4,
             cache_dir=tmp_path / "own-cache")
    # answered and cached items in the mix: the sharded run keeps the first, writes the second once
    run_eval(small_run, str(tiny_llava_dir), name="dist", max_new_tokens=6, batch_size=2, scenarios="bench")
    first = read_jsonl(rd.responses_path("dist", "bench"))
    rd.responses_path("dist", "bench").write_text("".join(json.dumps(r) + "\n" for r in first[:2]))

    proc = torchrun(small_run, tiny_llava_dir, "dist")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one summary, from rank 0, with the counts of both ranks: 6 generated, 4 from the cache
    assert "10 answered (6 by the model, 4 from the response cache), 2 already done" in proc.stderr
    assert proc.stderr.count("answered (") == 1
    for sc in SCENARIOS:
        a = read_jsonl(rd.responses_path("single", sc))
        b = read_jsonl(rd.responses_path("dist", sc))
        assert [r["question_id"] for r in b] == [0, 1, 2, 3, 4, 5]
        assert [(r["question_id"], r["text"], r["prompt"]) for r in a] == \
               [(r["question_id"], r["text"], r["prompt"]) for r in b]
    assert not list((rd.responses_dir("dist") / ".shards").glob("*.jsonl"))
    # a rerun under torchrun has nothing left to do
    proc = torchrun(small_run, tiny_llava_dir, "dist")
    assert proc.returncode == 0 and "12 already done" in proc.stderr, proc.stderr[-3000:]


# Runs run_eval under torchrun and exits non-zero when a reference to the process group
# outlives Dist.close (besides the one kept here to count them).
CLOSE_DRIVER = """
import sys
import torch.distributed as dist
from emidbench.eval import run_eval, sharding

kept = []
close = sharding.Dist.close

def spy(self, sync=True):
    if self.owns_group and dist.is_initialized() and not kept:
        kept.append(dist.group.WORLD)
    close(self, sync)

sharding.Dist.close = spy
summary = run_eval(sys.argv[1], sys.argv[2], name="dist", max_new_tokens=6, batch_size=2, scenarios="bench")
assert kept and summary.skipped == 6, summary
left = sys.getrefcount(kept[0]) - 2  # minus `kept` and getrefcount's argument
sys.exit(f"{left} references to the process group outlive Dist.close" if left else 0)
"""


def test_close_really_destroys_the_process_group(small_run, tiny_llava_dir, tmp_path):
    """A group that survives destroy_process_group (held by a module imported after it was
    created: transformers imports torch.distributed.nn, whose defaults bind group.WORLD) keeps
    its gloo worker threads retiring the last collective while the interpreter exits, which
    now and then aborts a rank ("terminate called without an active exception")."""
    run_eval(small_run, str(tiny_llava_dir), name="dist", max_new_tokens=6, batch_size=2, scenarios="bench")
    driver = tmp_path / "driver.py"
    driver.write_text(CLOSE_DRIVER)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(driver), str(small_run), str(tiny_llava_dir)],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_sharding_is_deterministic_and_complete():
    items = list(range(11))
    shards = [take_shard(items, Dist(rank=r, world=3)) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(shards, [])) == items


def test_merge_puts_shards_in_question_order_and_keeps_answers_over_failures(tmp_path):
    questions = [{"question_id": q} for q in (3, 1, 2)]
    main = tmp_path / "s.jsonl"
    main.write_text(json.dumps({"question_id": 1, "text": "ok", "metadata": {}}) + "\n")
    shard = tmp_path / "s.rank0.jsonl"
    shard.write_text(json.dumps({"question_id": 1, "text": "", "metadata": {"error": "x"}}) + "\n" +
                     json.dumps({"question_id": 2, "text": "b", "metadata": {}}) + "\n" +
                     json.dumps({"question_id": 3, "text": "c", "metadata": {}}) + "\n" + '{"question_id": 9, "te')
    merged = merge_answers(main, questions, [shard])
    assert [(r["question_id"], r["text"]) for r in merged] == [(3, "c"), (1, "ok"), (2, "b")]
    assert read_jsonl(main) == merged and not shard.exists()


def test_a_merge_that_changes_nothing_leaves_the_file_untouched(tmp_path):
    questions = [{"question_id": q} for q in (1, 2)]
    main = tmp_path / "s.jsonl"
    merge_answers(main, questions, [], keep=None)
    assert not main.exists()  # nothing to write, nothing written
    shard = tmp_path / "s.rank0.jsonl"
    shard.write_text("".join(json.dumps({"question_id": q, "text": f"a{q}", "metadata": {}}) + "\n" for q in (2, 1)))
    merge_answers(main, questions, [shard])
    os.utime(main, ns=(1_000_000_000, 1_000_000_000))
    before = main.read_bytes()
    # the same answers again from a shard, and no shard at all: same bytes, same mtime
    shard.write_text(json.dumps({"question_id": 1, "text": "a1", "metadata": {}}) + "\n")
    merge_answers(main, questions, [shard])
    merge_answers(main, questions)
    assert main.read_bytes() == before and main.stat().st_mtime_ns == 1_000_000_000 and not shard.exists()
    # a different answer is written
    shard.write_text(json.dumps({"question_id": 1, "text": "new", "metadata": {}}) + "\n")
    merge_answers(main, questions, [shard])
    assert [r["text"] for r in read_jsonl(main)] == ["new", "a2"] and main.stat().st_mtime_ns != 1_000_000_000
