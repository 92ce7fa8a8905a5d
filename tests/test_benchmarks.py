import json
import shutil

import pytest

from emidbench.benchmarks import load_benchmark
from emidbench.common.errors import UserError
from tests.helpers import make_llava_folder, photo_like, reference_dir, run_cli, write_jsonl


def test_llava_folder(tmp_path):
    root = make_llava_folder(tmp_path / "my-bench", n_images=3, per_image=2)
    write_jsonl(root / "context.jsonl", [{"image": "img_0.jpg", "caption": "A gradient."}])
    bench = load_benchmark(str(root))
    assert bench.name == "my_bench"
    assert [s.question_id for s in bench.samples] == list(range(6))
    s0 = bench.samples[0]
    assert s0.reference == "Picture 0 shows gradients (0)."
    assert s0.category == "conv" and s0.context == "A gradient."
    assert bench.samples[2].context is None
    assert s0.read_image() == (root / "images" / "img_0.jpg").read_bytes()
    assert s0.open_image().size == (96, 72)


def test_real_llava_bench_coco_questions(tmp_path):
    ref = reference_dir("llava-bench-coco")
    if ref is None:
        pytest.skip("../shared/reference/llava-bench-coco is not beside this clone")
    root = tmp_path / "llava-bench-coco"
    (root / "images").mkdir(parents=True)
    for name in ("qa90_questions.jsonl", "qa90_gpt4_answer.jsonl", "caps_boxes_coco2014_val_80.jsonl"):
        shutil.copy(ref / name, root / name)
    images = sorted({json.loads(l)["image"] for l in (ref / "qa90_questions.jsonl").open()})
    for i, name in enumerate(images):
        (root / "images" / name).write_bytes(photo_like(i))
    bench = load_benchmark(str(root))
    assert bench.name == "llava_bench_coco"
    assert len(bench.samples) == 90 and len(images) == 30
    assert {s.category for s in bench.samples} == {"conv", "detail", "complex"}
    s0 = bench.samples[0]
    assert s0.text == "What is the color of the two suitcases in the image?"
    assert s0.reference.startswith("The colors of the two suitcases")
    # The judge's context, as LLaVA builds it: captions, a blank line, then boxes.
    assert s0.context is not None and "\n\n" in s0.context and ": [" in s0.context


def _save_lmms_style(path, with_answer_col="answer"):
    import datasets

    feats = datasets.Features({"question_id": datasets.Value("int64"), "image": datasets.Image(),
                               "question": datasets.Value("string"), "category": datasets.Value("string"),
                               "caption": datasets.Value("string"), with_answer_col: datasets.Value("string")})
    rows = {"question_id": [10, 11, 12],
            "image": [{"bytes": photo_like(i), "path": None} for i in range(3)],
            "question": ["q0", "q1", "q2"], "category": ["conv", "detail", "complex"],
            "caption": ["c0", "c1", "c2"], with_answer_col: ["a0", "a1", "a2"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats)}).save_to_disk(str(path))


def test_hf_dataset_saved_locally_with_builtin_mapping(tmp_path):
    _save_lmms_style(tmp_path / "coco")
    _save_lmms_style(tmp_path / "wild", with_answer_col="gpt_answer")
    bench = load_benchmark(str(tmp_path / "coco"), known_as="lmms-lab/llava-bench-coco",
                           domains={"llava_bench_in_the_wild": str(tmp_path / "wild")},
                           columns=None)
    assert bench.name == "llava_bench_coco"
    assert [s.reference for s in bench.samples] == ["a0", "a1", "a2"]
    assert [s.context for s in bench.samples] == ["c0", "c1", "c2"]
    assert bench.samples[0].read_image() == photo_like(0)
    # the second domain needs its own mapping: gpt_answer is not the default column
    with pytest.raises(UserError, match="missing column 'reference'"):
        load_benchmark(str(tmp_path / "wild"))
    wild = load_benchmark(str(tmp_path / "wild"), known_as="lmms-lab/llava-bench-in-the-wild")
    assert wild.name == "llava_bench_in_the_wild" and wild.samples[2].reference == "a2"
    mapped = load_benchmark(str(tmp_path / "wild"), columns="text=question,reference=gpt_answer,context=caption")
    assert mapped.samples[1].text == "q1"


def test_hub_unreachable_is_one_clear_error(tmp_path):
    proc = run_cli("shift", tmp_path / "run", "--benchmark", "lmms-lab/llava-bench-coco",
                   env={"HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot reach the Hugging Face hub for lmms-lab/llava-bench-coco" in lines[0]
    assert not (tmp_path / "run").exists()


def test_jsonl_and_parquet_files(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(photo_like(1, fmt="PNG"))
    rows = [{"question_id": "x1", "image": "imgs/a.png", "question": "Q?", "reference": "R.",
             "question_German": "F?"}]
    write_jsonl(tmp_path / "b.jsonl", rows)
    bench = load_benchmark(str(tmp_path / "b.jsonl"))
    assert bench.samples[0].translations == {"German": "F?"}
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{**rows[0], "image": {"bytes": photo_like(2), "path": "p.jpg"}}]),
                   tmp_path / "b.parquet")
    pbench = load_benchmark(str(tmp_path / "b.parquet"))
    assert pbench.samples[0].read_image() == photo_like(2)


@pytest.mark.parametrize("breakage,match", [
    ("malformed", r"questions.jsonl:2: malformed JSON"),
    ("duplicate", r"questions.jsonl:2: duplicate question_id 0"),
    ("undecodable", r"sample 0 \(img_0.jpg\): image does not decode \(not a known image format\)"),
    ("escape", r"escapes"),
    ("missing_image", r"image 'nope.jpg' not found"),
    ("no_reference", r"question_id 1 has no reference answer"),
])
def test_bad_llava_folders(tmp_path, breakage, match):
    root = make_llava_folder(tmp_path / "b", n_images=2, per_image=1)
    lines = (root / "questions.jsonl").read_text().splitlines()
    q1 = json.loads(lines[1])
    if breakage == "malformed":
        lines[1] = lines[1][:-3]
    elif breakage == "duplicate":
        q1["question_id"] = 0
    elif breakage == "undecodable":
        q1["image"] = "img_0.jpg"
        (root / "images" / "img_0.jpg").write_bytes(b"not an image at all")
    elif breakage == "escape":
        (tmp_path / "secret.jpg").write_bytes(photo_like(9))
        q1["image"] = "../../secret.jpg"
    elif breakage == "missing_image":
        q1["image"] = "nope.jpg"
    elif breakage == "no_reference":
        (root / "answers.jsonl").write_text((root / "answers.jsonl").read_text().splitlines()[0] + "\n")
    if breakage != "malformed":
        lines[1] = json.dumps(q1)
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=match):
        load_benchmark(str(root))


def test_unknown_benchmark(tmp_path):
    with pytest.raises(UserError, match="unknown benchmark 'nosuch'"):
        load_benchmark("nosuch")
