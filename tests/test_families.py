"""Every open multimodal family the hf backend serves, as a tiny random checkpoint built
with the family's real transformers classes (tests/families.py), saved with
save_pretrained and loaded back through the same path as a hub id:

- every item is answered, and batch 4 gives the answers batch 1 gives (fp32), with no
  item silently redone alone;
- the token ids fed to the model are transformers' own
  `processor.apply_chat_template(..., tokenize=True)` ids (exactly one BOS);
- the family-specific cases: Mllama's template refusing a system message, PaliGemma's
  missing template, a processor that rejects one image of a batch.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from conftest import sample_image

from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.eval.backends import Request
from emidbench.eval.backends.hf import HFBackend
from emidbench.eval.options import EvalOptions
from emidbench.rundir import RunDir
from tests.families import FAMILIES, build
from tests.helpers import REPO

NAMES = list(FAMILIES)
QUESTIONS = ["What color is the circle?", "How many shapes are in the image?"]


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory):
    """family name -> its checkpoint folder, built once per session."""
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = build(name, tmp_path_factory.mktemp(name))
        return built[name]

    return get


def _images():
    return [sample_image(0, size=(48, 40)), sample_image(1, size=(40, 56))]


def _scenario(images=None):
    images = images or _images()
    return [(i * 2 + j, img, QUESTIONS[j]) for i, img in enumerate(images) for j in range(2)]


def _texts(run, name):
    return {r["question_id"]: r for r in read_jsonl(RunDir(run).responses_path(name, "bench"))}


@pytest.mark.parametrize("family", NAMES)
def test_family_answers_every_item_the_same_at_batch_4_and_batch_1(family, family_dir, make_run, tmp_path):
    path = family_dir(family)
    run = make_run({"bench": _scenario()})
    b4 = run_eval(run, str(path), name="b4", batch_size=4, max_new_tokens=3, dtype="float32",
                  cache_dir=tmp_path / "cache4")
    b1 = run_eval(run, str(path), name="b1", batch_size=1, max_new_tokens=3, dtype="float32",
                  cache_dir=tmp_path / "cache1")
    for s in (b4, b1):
        assert (s.done, s.failed, s.fallbacks) == (4, 0, {}), s.line()  # batching really on: nothing redone alone
    four, one = _texts(run, "b4"), _texts(run, "b1")
    assert sorted(four) == [0, 1, 2, 3]
    assert all(r["text"] for r in four.values())
    assert {q: r["text"] for q, r in four.items()} == {q: r["text"] for q, r in one.items()}
    record = json.loads((RunDir(run).responses_dir("b4") / "eval.json").read_text())
    assert record["last_run"]["fallbacks"] == {"items": 0, "reasons": {}}


@pytest.mark.parametrize("family", NAMES)
def test_family_is_fed_the_chat_template_token_ids(family, family_dir):
    """The ids generate() receives are the ids transformers' own chat-template path gives."""
    from PIL import Image

    path = family_dir(family)
    engine = HFBackend(str(path), EvalOptions(max_new_tokens=1, dtype="float32"))
    engine.load()
    seen = []
    engine._model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs.get("input_ids", args[0] if args else None)), with_kwargs=True)
    data = _images()[1]
    [result] = engine.answer([Request(data, QUESTIONS[0])])
    assert result.error is None and result.text
    image = Image.open(io.BytesIO(data)).convert("RGB")
    proc = engine.processor
    if FAMILIES[family].template is None:  # PaliGemma: the processor builds the prompt around the question
        expected = proc(images=[[image]], text=[QUESTIONS[0]], return_tensors="pt")["input_ids"]
        assert result.prompt == QUESTIONS[0]
    else:
        messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": QUESTIONS[0]}]}]
        # Phi-4-multimodal: the processor has no template of its own; the checkpoint's is the tokenizer's
        template = proc.chat_template or proc.tokenizer.chat_template
        expected = proc.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                            tokenize=True, return_dict=True, return_tensors="pt")["input_ids"]
    fed = seen[0]
    assert fed.tolist() == expected.tolist()
    fam = FAMILIES[family]
    writes_bos = "bos_token" in (fam.template or "")
    if fam.bos is not None:  # exactly one BOS where the family has one (tokenizer or template), never two
        assert fed[0].tolist().count(engine.tokenizer.bos_token_id) == int(fam.adds_bos or writes_bos)


def test_mllama_system_prompt_is_folded_into_the_user_turn(family_dir, make_run, tmp_path):
    """Mllama's template refuses a system message beside an image: the system text goes
    into the user turn, every item is answered and eval.json says so."""
    path = family_dir("mllama")
    run = make_run({"bench": _scenario()[:2]})
    s = run_eval(run, str(path), name="m", batch_size=2, max_new_tokens=2, system_prompt="Be brief.",
                 cache_dir=tmp_path / "c")
    assert (s.done, s.failed) == (2, 0)
    recs = _texts(run, "m")
    assert all("be brief." in r["prompt"].lower() and "system" not in r["prompt"] for r in recs.values())
    record = json.loads((RunDir(run).responses_dir("m") / "eval.json").read_text())
    assert "folded into the user turn" in record["options"]["system_prompt_placement"]


def test_paligemma_has_a_documented_plain_prompt(family_dir, make_run, tmp_path):
    path = family_dir("paligemma")
    run = make_run({"bench": _scenario()[:2]})
    s = run_eval(run, str(path), name="p", max_new_tokens=2, system_prompt="Answer briefly.", cache_dir=tmp_path / "c")
    assert (s.done, s.failed) == (2, 0)
    assert _texts(run, "p")[0]["prompt"] == "Answer briefly.\n\n" + QUESTIONS[0]
    record = json.loads((RunDir(run).responses_dir("p") / "eval.json").read_text())
    assert record["options"]["prompt_format"].startswith("plain (paligemma:")


def test_an_item_the_processor_rejects_fails_alone_and_the_fallback_is_counted(family_dir, make_run, tmp_path):
    """Qwen2-VL's processor rejects an image with an extreme aspect ratio: the batch is redone
    item by item (counted, with the reason), the others are answered, that one is its failure."""
    from rich.console import Console

    path = family_dir("qwen2_vl")
    strip = sample_image(5, size=(600, 2))
    run = make_run({"bench": _scenario() + [(4, strip, QUESTIONS[0])]})
    buf = io.StringIO()
    s = run_eval(run, str(path), name="q", batch_size=5, max_new_tokens=2, cache_dir=tmp_path / "c",
                 group_by_length=False, console=Console(file=buf, width=300))
    assert (s.done, s.failed) == (4, 1)
    assert sum(s.fallbacks.values()) == 5
    [reason] = s.fallbacks
    assert "aspect ratio" in reason
    recs = _texts(run, "q")
    assert "aspect ratio" in recs[4]["metadata"]["error"] and recs[4]["text"] == ""
    assert "5 items redone one at a time after a batch failed" in buf.getvalue()
    record = json.loads((RunDir(run).responses_dir("q") / "eval.json").read_text())
    assert record["last_run"]["fallbacks"]["items"] == 5 and record["last_run"]["failed"] == 1
    alone = run_eval(run, str(path), name="q1", batch_size=1, max_new_tokens=2, cache_dir=tmp_path / "c1")
    assert {q: r["text"] for q, r in _texts(run, "q1").items()} == {q: r["text"] for q, r in recs.items()}
    assert alone.fallbacks == {}


def test_a_template_error_is_that_items_recorded_failure(family_dir, make_run, tmp_path):
    """A chat template that raises for one question: that item fails (recorded), the rest answer."""
    import shutil

    path = tmp_path / "picky"
    shutil.copytree(family_dir("llava"), path)
    template = (path / "chat_template.jinja").read_text()
    (path / "chat_template.jinja").write_text(
        "{% if 'many' in messages[-1]['content'][-1]['text'] %}{{ raise_exception('no counting questions') }}"
        "{% endif %}" + template)
    run = make_run({"bench": _scenario()})
    s = run_eval(run, str(path), name="t", max_new_tokens=2, cache_dir=tmp_path / "c")
    assert (s.done, s.failed, s.exit_code) == (2, 2, 1)
    recs = _texts(run, "t")
    assert recs[1]["metadata"]["error"] == "prompt: TemplateError: no counting questions"


def test_group_by_length_changes_no_answer(family_dir, make_run, tmp_path):
    """Grouped by image size / prompt length (Qwen2-VL: dynamic resolution), every answer is
    the one question order gives, and the file is in question order."""
    path = family_dir("qwen2_vl")
    imgs = [sample_image(i, size=size) for i, size in enumerate([(48, 40), (96, 64), (40, 56), (64, 64)])]
    run = make_run({"bench": _scenario(imgs)})
    engine = HFBackend(str(path), EvalOptions())
    keys = [engine.order_key(Request(img, q), engine.prompt(Request(img, q))) for _, img, q in _scenario(imgs)]
    assert sorted(range(8), key=keys.__getitem__) != list(range(8))  # grouping does reorder the batches
    for name, group in (("g", True), ("n", False)):
        run_eval(run, str(path), name=name, batch_size=3, max_new_tokens=3, group_by_length=group,
                 cache_dir=tmp_path / name)
    rd = RunDir(run)
    grouped, plain = (list(read_jsonl(rd.responses_path(n, "bench"))) for n in ("g", "n"))
    assert [r["question_id"] for r in grouped] == list(range(8))  # question order in the file
    assert [(r["question_id"], r["text"], r["prompt"]) for r in grouped] == [
        (r["question_id"], r["text"], r["prompt"]) for r in plain]


def test_device_map_auto_gives_the_same_answers_and_attention_is_chosen(family_dir, make_run, tmp_path):
    path = family_dir("llava")
    run = make_run({"bench": _scenario()})
    run_eval(run, str(path), name="a", max_new_tokens=3, device_map="auto", cache_dir=tmp_path / "a")
    run_eval(run, str(path), name="b", max_new_tokens=3, cache_dir=tmp_path / "b")
    assert ({q: r["text"] for q, r in _texts(run, "a").items()} == {q: r["text"] for q, r in _texts(run, "b").items()})
    record = json.loads((RunDir(run).responses_dir("a") / "eval.json").read_text())
    assert record["options"]["device_map"] == "auto"
    s = run_eval(run, str(path), name="e", max_new_tokens=3, attn_implementation="eager", cache_dir=tmp_path / "e")
    assert (s.done, s.failed) == (4, 0)
    record = json.loads((RunDir(run).responses_dir("e") / "eval.json").read_text())
    assert record["options"]["attn_implementation"] == "eager" and record["identity"].endswith(":eager")
    assert record["options"]["dtype"] == "float32" and record["options"]["device"] == "cpu"  # no GPU here


def test_half_precision_keys_the_cache_by_batch_size(family_dir):
    path = str(family_dir("llava"))
    ident = {(d, b): HFBackend(path, EvalOptions(dtype=d, batch_size=b)).identity
             for d in ("float32", "bfloat16") for b in (1, 4)}
    assert ident["float32", 1] == ident["float32", 4]  # fp32: batch invariant, one cache entry
    assert ident["bfloat16", 1] != ident["bfloat16", 4]
    assert ident["bfloat16", 1] != ident["float32", 1]
    assert HFBackend(path, EvalOptions(attn_implementation="eager")).identity.endswith(":eager")


# Run in a child process where torchvision cannot be found: transformers then reports the
# family's video processor as needing it, as on an install without it.
NO_TORCHVISION = """
import sys
sys.modules["torchvision"] = None  # find_spec() gives None and `import torchvision` fails, as when not installed
from emidbench.cli import main
sys.argv = ["emidbench"] + sys.argv[1:]
main()
"""


def test_missing_torchvision_is_one_line_with_the_install_line(family_dir, make_run):
    path = family_dir("qwen2_vl")
    run = make_run({"bench": _scenario()[:1]})
    proc = subprocess.run([sys.executable, "-c", NO_TORCHVISION, "eval", str(run), "--model", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs torchvision" in lines[0] and "pip install torch==" in lines[0], proc.stderr
