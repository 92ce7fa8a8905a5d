"""In-context examples at evaluation time: the hf backend renders them as earlier
user/assistant turns with their images through the model's chat template (compared with
transformers' own apply_chat_template for two families), one-image families refuse in one
line, the openai backend sends them as earlier image_url turns, and the response cache
keys on the example images."""

from __future__ import annotations

import base64
import io

import pytest

from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.eval.backends import Example, Request
from emidbench.eval.backends.hf import HFBackend
from emidbench.eval.options import EvalOptions
from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest, ScenarioEntry
from tests.conftest import sample_image
from tests.fake_openai import fake_openai  # noqa: F401 - the fixture
from tests.families import build

QUESTION = "What shape is in the image? circle, square or triangle?"


def write_icl_run(root, scenarios: dict):
    """RUN/shifts with ICL lines: scenario -> [(question_id, image, text, [(image, text, answer), ...])]."""
    rd = RunDir(root)
    entries = []
    for name, items in scenarios.items():
        records = []
        for qid, image, text, examples in items:
            records.append({"question_id": qid, "image": rd.put_image(image, "png"), "text": text,
                            "reference": "circle", "choices": ["circle", "square", "triangle"],
                            "examples": [{"image": rd.put_image(im, "png"), "text": t, "answer": a}
                                         for im, t, a in examples]})
        rd.write_scenario(name, records)
        entries.append(ScenarioEntry(name, "id" if not entries else "natural", "none", None, None, len(records),
                                     f"{name}.jsonl"))
    rd.write_manifest(Manifest("test", entries[0].name, 0, entries[0].name, entries))
    return root


def _examples(seeds=(1, 2)):
    return [(sample_image(s, size=(40, 48)), QUESTION, f"Answer Choice: [{('square', 'circle')[i % 2]}]")
            for i, s in enumerate(seeds)]


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory, tiny_llava_dir):
    built = {"llava": tiny_llava_dir}

    def get(name: str):
        if name not in built:
            built[name] = build(name, tmp_path_factory.mktemp(name))
        return built[name]

    return get


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3", "gemma3"])
def test_examples_are_earlier_turns_with_their_images_as_the_chat_template_renders_them(family, family_dir):
    from PIL import Image

    path = family_dir(family)
    engine = HFBackend(str(path), EvalOptions(max_new_tokens=1, dtype="float32"))
    engine.check_examples()  # several images per prompt: accepted
    engine.load()
    seen = []
    engine._model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs.get("input_ids", args[0] if args else None)), with_kwargs=True)
    examples = _examples()
    query = sample_image(5, size=(48, 40))
    req = Request(query, QUESTION + " Just pick a choice.", examples=tuple(Example(*e) for e in examples))
    [result] = engine.answer([req], [engine.prompt(req)])
    assert result.error is None, result.error

    def pil(data):
        return Image.open(io.BytesIO(data)).convert("RGB")

    messages = []
    for im, text, answer in examples:
        messages += [{"role": "user", "content": [{"type": "image", "image": pil(im)}, {"type": "text", "text": text}]},
                     {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    messages.append({"role": "user", "content": [{"type": "image", "image": pil(query)},
                                                 {"type": "text", "text": req.question}]})
    expected = engine.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")["input_ids"]
    assert seen[0].tolist() == expected.tolist()
    # three images, the answers of the examples as assistant turns, the question last
    prompt = result.prompt
    assert prompt.count("Answer Choice: [square]") == 1 and prompt.count("Answer Choice: [circle]") == 1
    assert prompt.rindex("Answer Choice") < prompt.rindex("Just pick a choice.")
    image_token = engine.processor.image_token
    assert prompt.count(image_token) == 3
    # the pixel inputs hold the three images (the examples' first): not the query thrice
    alone = engine.encode([[pil(query)]], [engine.prompt(Request(query, req.question))])
    together = engine.encode([[pil(e[0]) for e in examples] + [pil(query)]], [prompt])
    assert together["pixel_values"].numel() > alone["pixel_values"].numel()


def test_a_one_image_family_refuses_icl_scenarios_in_one_line(tmp_path):
    path = build("mllama", tmp_path / "mllama")
    run = write_icl_run(tmp_path / "run", {"s": [(0, sample_image(0), QUESTION, _examples())]})
    with pytest.raises(UserError, match=r"in-context examples need several images in one prompt; Llama 3.2 "
                                        r"Vision is meant for one image per prompt"):
        run_eval(run, str(path), dtype="float32")
    assert not RunDir(run).responses_dir("mllama").exists()  # refused before any answer
    # without examples the same model answers
    plain = tmp_path / "plain"
    rd = RunDir(plain)
    rd.write_scenario("s", [{"question_id": 0, "image": rd.put_image(sample_image(0), "png"), "text": QUESTION,
                             "reference": "circle"}])
    rd.write_manifest(Manifest("t", "s", 0, "s", [ScenarioEntry("s", "id", "none", None, None, 1, "s.jsonl")]))
    assert run_eval(plain, str(path), dtype="float32", max_new_tokens=2).done == 1


def test_the_response_cache_keys_on_the_example_images(tiny_llava_dir, tmp_path):
    query = sample_image(5)
    same = _examples((1, 2))
    other_image = [(sample_image(7, size=(40, 48)), t, a) for _, t, a in same]  # same texts, another image
    run = write_icl_run(tmp_path / "run", {
        "a": [(0, query, QUESTION, same)], "a_again": [(0, query, QUESTION, same)],
        "b": [(0, query, QUESTION, other_image)], "none": [(0, query, QUESTION, [])]})
    s = run_eval(run, str(tiny_llava_dir), name="m", dtype="float32", max_new_tokens=3)
    assert (s.generated, s.done, s.cached) == (3, 3, 1)  # a and a_again share one request; b and none do not
    rd = RunDir(run)
    keys = {sc: read_jsonl(rd.responses_path("m", sc))[0]["metadata"]["request_key"]
            for sc in ("a", "a_again", "b", "none")}
    assert keys["a"] == keys["a_again"] and len({keys["a"], keys["b"], keys["none"]}) == 3
    prompts = {sc: read_jsonl(rd.responses_path("m", sc))[0]["prompt"] for sc in ("a", "b")}
    assert prompts["a"] == prompts["b"]  # only the example image differs


def test_openai_sends_examples_as_earlier_image_url_turns(tmp_path, fake_openai):  # noqa: F811
    server = fake_openai(lambda body: "Answer Choice: [circle]")
    examples = _examples()
    run = write_icl_run(tmp_path / "run", {"s": [(0, sample_image(5), QUESTION, examples)]})
    s = run_eval(run, "m", backend="openai", base_url=server.url, system_prompt="Be brief.")
    assert (s.done, s.failed) == (1, 0)
    body = server.requests[-1][2]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    for (im, text, answer), (user, assistant) in zip(examples, zip(body["messages"][1::2], body["messages"][2::2])):
        url = user["content"][0]["image_url"]["url"]
        assert base64.b64decode(url.split(",", 1)[1]) == im
        assert user["content"][1] == {"type": "text", "text": text} and assistant["content"] == answer
    last = body["messages"][-1]["content"]
    assert base64.b64decode(last[0]["image_url"]["url"].split(",", 1)[1]) == sample_image(5)
    [rec] = read_jsonl(RunDir(run).responses_path("m", "s"))
    assert "Answer Choice: [square]" in rec["prompt"]  # the recorded prompt shows the examples


def test_the_vllm_backend_refuses_icl_scenarios_in_one_line(family_dir):
    from emidbench.eval.backends.vllm import VLLMBackend
    from tests.test_eval_vllm import StandInApi

    backend = VLLMBackend(str(family_dir("qwen2_vl")), EvalOptions(backend="vllm"), api=StandInApi())
    with pytest.raises(UserError, match=r"the VLLMBackend backend does not render in-context examples; evaluate "
                                        r"the ICL scenarios \(\*_icl\*\) with the hf or openai backend"):
        backend.check_examples()
