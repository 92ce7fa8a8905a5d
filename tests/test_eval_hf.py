"""`emidbench eval` with the hf backend on a real (tiny, untrained) LLaVA saved like a hub checkpoint."""

import json
import shutil

import pytest

from emidbench.common.errors import UserError
from emidbench.common.hf import weights_fingerprint
from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.eval.backends import Request
from emidbench.eval.backends.hf import HFBackend
from emidbench.eval.options import EvalOptions
from emidbench.rundir import RunDir

SCENARIOS = ("bench", "bench_defocus_blur_5")


def answers(run, model, scenario):
    return read_jsonl(RunDir(run).responses_path(model, scenario))


def test_eval_writes_llava_answer_files_in_question_order(small_run, tiny_llava_dir):
    s = run_eval(small_run, str(tiny_llava_dir), name="tiny", batch_size=4, max_new_tokens=6)
    assert (s.done, s.cached, s.failed, s.skipped) == (12, 0, 0, 0) and s.exit_code == 0
    assert s.per_scenario["bench"] == {"done": 6, "cached": 0, "failed": 0, "skipped": 0}
    rd = RunDir(small_run)
    for sc in SCENARIOS:
        recs = answers(small_run, "tiny", sc)
        questions = rd.read_scenario(sc)
        assert [r["question_id"] for r in recs] == [q["question_id"] for q in questions]
        for r, q in zip(recs, questions):
            assert set(r) == {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}
            # the processor's own chat template, not a hand-written prompt
            assert r["prompt"] == f"USER: <image>\n{q['text']} ASSISTANT:"
            assert r["model_id"] == "tiny" and r["text"] and len(r["answer_id"]) == 22
            meta = r["metadata"]
            assert meta["max_new_tokens"] == 6 and meta["temperature"] == 0.0 and meta["system_prompt"] is None
            assert meta["scenario"] == sc and meta["backend"] == "hf" and "error" not in meta
    # the model sees the image: one question, three images -> not all answers equal
    assert len({r["text"] for r in answers(small_run, "tiny", "bench")}) > 1
    record = json.loads((rd.responses_dir("tiny") / "eval.json").read_text())
    assert record["backend"] == "hf" and record["model"] == str(tiny_llava_dir)
    assert record["generation"] == {"max_new_tokens": 6, "temperature": 0.0, "system_prompt": None}
    assert record["options"]["dtype"] == "float32" and record["options"]["device"] == "cpu"
    assert record["identity"] == f"hf:local:{weights_fingerprint(tiny_llava_dir)}:float32"
    # where the time went: each step's wall seconds (the model loaded: something was generated)
    steps = record["timings"]["steps"]
    assert set(steps) == {"prepare", "cached answers", "load model", "generate", "merge"}
    # each figure is rounded to the millisecond on its own: the rounded steps may sum past
    # the rounded total by up to half a millisecond per figure
    slack = 0.0005 * (len(steps) + 1) + 1e-9
    assert all(v >= 0 for v in steps.values()) and record["timings"]["total"] >= sum(steps.values()) - slack

    before = {sc: rd.responses_path("tiny", sc).read_bytes() for sc in SCENARIOS}
    again = run_eval(small_run, str(tiny_llava_dir), name="tiny", batch_size=2, max_new_tokens=6)
    assert (again.done, again.cached, again.skipped, again.generated) == (0, 0, 12, 0)
    assert before == {sc: rd.responses_path("tiny", sc).read_bytes() for sc in SCENARIOS}


def test_batched_generation_equals_batch_of_one(tiny_llava_dir, image_bytes):
    backend = HFBackend(str(tiny_llava_dir), EvalOptions(max_new_tokens=8))
    questions = ["What color is the circle?", "Describe the image in detail please.", "How many shapes are there?",
                 "What is in the top left part of the picture?", "Is there a red square?"]
    reqs = [Request(image_bytes(i, blur=i % 2), q) for i, q in enumerate(questions)]
    batched = [r.text for r in backend.answer(reqs)]
    single = [backend.answer([r])[0].text for r in reqs]
    assert batched == single
    assert len(set(batched)) > 1  # a mix-up of rows would show
    assert backend.tokenizer.padding_side == "left"


def test_system_prompt_goes_through_the_chat_template(small_run, tiny_llava_dir):
    run_eval(small_run, str(tiny_llava_dir), name="sys", max_new_tokens=3, scenarios="bench",
             system_prompt="Be brief.")
    rec = answers(small_run, "sys", "bench")[0]
    assert rec["prompt"].startswith("Be brief. USER: <image>\n") and rec["metadata"]["system_prompt"] == "Be brief."


def test_scenario_glob_selects_and_rerun_continues_with_the_rest(small_run, tiny_llava_dir):
    s = run_eval(small_run, str(tiny_llava_dir), name="g", max_new_tokens=3, scenarios="*blur*")
    assert set(s.per_scenario) == {"bench_defocus_blur_5"} and s.done == 6
    assert not RunDir(small_run).responses_path("g", "bench").exists()
    s = run_eval(small_run, str(tiny_llava_dir), name="g", max_new_tokens=3)
    assert (s.done, s.skipped) == (6, 6)


def test_unreadable_image_is_a_failed_item_and_the_run_goes_on(small_run, tiny_llava_dir):
    rd = RunDir(small_run)
    first = rd.read_scenario("bench")[0]
    good = (rd.images / first["image"]).read_bytes()
    (rd.images / first["image"]).write_bytes(b"not an image")
    s = run_eval(small_run, str(tiny_llava_dir), name="t", max_new_tokens=4, scenarios="bench")
    assert (s.failed, s.done, s.exit_code) == (2, 4, 1)  # image 0 serves questions 0 and 1
    assert "2 failed" in s.line() and "exit code 1" in s.line()
    out = answers(small_run, "t", "bench")
    assert [r["question_id"] for r in out] == [0, 1, 2, 3, 4, 5]
    assert "does not decode" in out[0]["metadata"]["error"] and out[0]["text"] == ""
    assert "error" not in out[2]["metadata"]
    # failures are not cached and are asked again once the image is fixed
    (rd.images / first["image"]).write_bytes(good)
    s = run_eval(small_run, str(tiny_llava_dir), name="t", max_new_tokens=4, scenarios="bench")
    assert (s.failed, s.done, s.skipped) == (0, 2, 4)
    out = answers(small_run, "t", "bench")
    assert len(out) == 6 and not any("error" in r["metadata"] for r in out)


def test_missing_image_file_is_a_failed_item(small_run, tiny_llava_dir):
    rd = RunDir(small_run)
    (rd.images / rd.read_scenario("bench_defocus_blur_5")[5]["image"]).unlink()
    s = run_eval(small_run, str(tiny_llava_dir), name="t", max_new_tokens=2)
    assert (s.failed, s.done) == (2, 10)  # one blurred image serves questions 4 and 5
    assert "cannot read" in answers(small_run, "t", "bench_defocus_blur_5")[5]["metadata"]["error"]


def test_bad_inputs_are_one_clear_line(tmp_path, small_run, tiny_llava_dir):
    with pytest.raises(UserError, match="run `emidbench shift` first"):
        run_eval(tmp_path / "nothing", str(tiny_llava_dir))
    with pytest.raises(UserError, match=r"no scenario matches 'zz\*' \(have: bench, bench_defocus_blur_5\)"):
        run_eval(small_run, str(tiny_llava_dir), scenarios="zz*")
    with pytest.raises(UserError, match="unknown model backend 'tgi' \\(known: hf, openai, vllm\\)"):
        run_eval(small_run, str(tiny_llava_dir), backend="tgi")
    with pytest.raises(UserError, match="cannot reach the Hugging Face hub for someorg/some-vlm.*local path"):
        run_eval(small_run, "someorg/some-vlm")
    with pytest.raises(UserError, match="model path .* does not exist"):
        run_eval(small_run, str(tmp_path / "no" / "model"))
    with pytest.raises(UserError, match="is a file"):
        run_eval(small_run, str(tiny_llava_dir / "config.json"))
    with pytest.raises(UserError, match="--batch-size must be at least 1"):
        run_eval(small_run, str(tiny_llava_dir), batch_size=0)
    with pytest.raises(UserError, match="unknown --dtype 'float8'"):
        run_eval(small_run, str(tiny_llava_dir), dtype="float8")
    with pytest.raises(UserError, match="CUDA is not available"):
        run_eval(small_run, str(tiny_llava_dir), device="cuda:0")
    assert not (RunDir(small_run).root / "responses").exists() or not any(
        (RunDir(small_run).root / "responses").rglob("*.jsonl"))


def test_text_only_model_is_not_image_text_to_text(tmp_path, small_run, tiny_llava_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "textonly"
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2)).save_pretrained(folder)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llava_dir / f, folder / f)
    with pytest.raises(UserError, match=r"textonly is not an image-text-to-text model \(model type 'llama'\)"):
        run_eval(small_run, str(folder))


def test_processor_without_chat_template_is_refused(tmp_path, small_run, tiny_llava_dir):
    folder = tmp_path / "notemplate"
    shutil.copytree(tiny_llava_dir, folder)
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(UserError, match="no chat template"):
        run_eval(small_run, str(folder))


def test_bundled_name_resolves_to_the_assets_folder(monkeypatch, tiny_llava_dir):
    import emidbench.assets as assets
    from emidbench.common.hf import resolve_model

    assert resolve_model("someorg/some-vlm") == "someorg/some-vlm"
    monkeypatch.setattr(assets, "bundled_model_path", lambda name: tiny_llava_dir if name == "tiny-llava" else None)
    assert resolve_model("tiny-llava") == str(tiny_llava_dir)
    backend = HFBackend("tiny-llava", EvalOptions(max_new_tokens=2))
    assert backend.path == str(tiny_llava_dir)
    monkeypatch.setattr(assets, "bundled_model_path", lambda name: None)
    with pytest.raises(UserError, match="bundled model 'tiny-llava' is not in this installation"):
        HFBackend("tiny-llava", EvalOptions())


def test_weights_fingerprint_follows_content(tmp_path, tiny_llava_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_llava_dir, copy)
    assert weights_fingerprint(copy) == weights_fingerprint(tiny_llava_dir)  # a copy keeps its cache
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-5] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert weights_fingerprint(copy) != weights_fingerprint(tiny_llava_dir)  # retrained in place: new answers


def test_progress_bar_and_summary_line_on_the_console(small_run, tiny_llava_dir):
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    s = run_eval(small_run, str(tiny_llava_dir), name="p", max_new_tokens=3, console=console)
    out = buf.getvalue()
    assert "items/s" in out and "eval p" in out  # the bar (rate, ETA) was drawn
    assert out.rstrip().endswith(s.line()) and "12 answered (12 by the model, 0 from the response cache)" in out


def test_vllm_backend_is_import_guarded(small_run):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(UserError, match=r"vllm is not installed: pip install 'emidbench\[vllm\]'"):
        run_eval(small_run, "llava-hf/llava-1.5-7b-hf", backend="vllm")
