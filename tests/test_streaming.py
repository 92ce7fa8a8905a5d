"""Shift at scale (issue 18): a benchmark's images are streamed through the stage, never
all held; images of any size (past 4k px on a side) go through every step; a benchmark of
10k questions is one pass."""

import json
import tracemalloc

import pytest
from PIL import Image

from emidbench.benchmarks import load_benchmark
from emidbench.benchmarks.base import ImageRef
from emidbench.common.errors import UserError
from emidbench.common.images import decode_image
from emidbench.rundir import RunDir
from emidbench.shift import run_shift
from tests.helpers import make_llava_folder, run_cli, write_jsonl

ONE_CORRUPTION = "scenarios:\n  - {name: bright, visual: {name: brightness, severity: 1}}\n"


def _suite(tmp_path, text=ONE_CORRUPTION):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _peak(work) -> int:
    """The peak bytes Python and numpy allocated while `work()` ran (tracemalloc)."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bytes_in(folder) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


@pytest.mark.parametrize("workers", [1, 2])
def test_shift_memory_grows_with_the_questions_not_the_images(tmp_path, workers):
    """Four times the images (512 px noisy PNGs, ~0.8 MB each) -> the peak grows by a small
    part of the extra images' bytes: each image is read when its task runs, then let go
    (with workers, at most a few tasks per worker wait in the queue). The images are large
    so that what the process allocates for other reasons (a dict of the interpreter that
    grows with every path it has made, ~8 MB at once under pytest-xdist) stays far below
    the bound."""
    suite = _suite(tmp_path)
    warm = make_llava_folder(tmp_path / "warm", n_images=2, per_image=1)
    run_shift(load_benchmark(str(warm)), suite, tmp_path / "warm-run", workers=workers)  # imports, outside the trace
    small = make_llava_folder(tmp_path / "small", n_images=24, per_image=2, sizes=[(512, 512)], fmt="PNG")
    large = make_llava_folder(tmp_path / "large", n_images=96, per_image=2, sizes=[(512, 512)], fmt="PNG")
    peak_small = _peak(lambda: run_shift(load_benchmark(str(small)), suite, tmp_path / "run-small", workers=workers))
    peak_large = _peak(lambda: run_shift(load_benchmark(str(large)), suite, tmp_path / "run-large", workers=workers))
    bytes_small, bytes_large = _bytes_in(small / "images"), _bytes_in(large / "images")
    assert bytes_large - bytes_small > 40e6  # the extra images are big enough to see
    assert peak_large - peak_small < 0.2 * (bytes_large - bytes_small), (peak_small, peak_large, bytes_large)
    run = RunDir(tmp_path / "run-large")
    lines = run.read_scenario("bright")
    assert len(lines) == 192 and len({r["image"] for r in lines}) == 96
    assert all(run.image_intact(r["image"]) for r in lines)


def test_eval_memory_grows_with_the_questions_not_the_images(tmp_path, tiny_llava_dir):
    """The eval stage reads each item's image when its batch runs: four times the images
    (~0.8 MB PNGs) leave its peak where it was (the hf backend, a tiny LLaVA)."""
    from emidbench.eval import run_eval

    suite = _suite(tmp_path)
    peaks, on_disk = {}, {}
    for n in (2, 24, 96):  # 2: imports and the model's first load, outside the comparison
        root = make_llava_folder(tmp_path / f"b{n}", n_images=n, per_image=1, sizes=[(512, 512)], fmt="PNG")
        run_shift(load_benchmark(str(root)), suite, tmp_path / f"r{n}")
        on_disk[n] = _bytes_in(tmp_path / f"r{n}" / "shifts" / "images")
        summary = []
        peaks[n] = _peak(lambda: summary.append(run_eval(tmp_path / f"r{n}", str(tiny_llava_dir), name="tiny",
                                                         batch_size=8, max_new_tokens=2)))
        assert summary[0].done == 2 * n and summary[0].failed == 0
    assert on_disk[96] - on_disk[24] > 40e6
    assert peaks[96] - peaks[24] < 0.2 * (on_disk[96] - on_disk[24]), (peaks, on_disk)


def test_loaded_benchmarks_hold_refs_not_bytes(tmp_path):
    """Every loader of files and datasets gives refs (one per image file, shared by its
    questions); the bytes are read on demand and are the file's."""
    import datasets

    root = make_llava_folder(tmp_path / "folder", n_images=3, per_image=3)
    bench = load_benchmark(str(root))
    assert all(isinstance(s.image, ImageRef) for s in bench.samples)
    assert len({id(s.image) for s in bench.samples}) == 3  # one ref per file
    assert bench.samples[4].read_image() == (root / "images" / "img_1.jpg").read_bytes()
    feats = datasets.Features({"question_id": datasets.Value("int64"), "image": datasets.Image(),
                               "question": datasets.Value("string"), "reference": datasets.Value("string")})
    rows = {"question_id": [0, 1], "image": [str(root / "images" / "img_0.jpg"), str(root / "images" / "img_2.jpg")],
            "question": ["q0", "q1"], "reference": ["a0", "a1"]}
    datasets.Dataset.from_dict(rows, features=feats).save_to_disk(str(tmp_path / "ds"))
    ds_bench = load_benchmark(str(tmp_path / "ds"))
    assert all(isinstance(s.image, ImageRef) for s in ds_bench.samples)
    assert ds_bench.samples[1].read_image() == (root / "images" / "img_2.jpg").read_bytes()
    assert ds_bench.samples[1].image_hash == bench.samples[6].image_hash


def test_images_of_every_size_past_4k(tmp_path):
    """Wide, tall, small and large images (4200 px and 4100 px on a side) go through
    corruptions and the store at their own size."""
    sizes = [(4200, 40), (40, 4100), (640, 480), (33, 47)]
    root = make_llava_folder(tmp_path / "sizes", n_images=4, per_image=1, sizes=sizes, fmt="PNG")
    suite = _suite(tmp_path, "scenarios:\n  - {name: noise, visual: {name: gaussian_noise, severity: 3}}\n"
                             "  - {name: glass, visual: {name: glass_blur, severity: 1}}\n")
    run_shift(load_benchmark(str(root)), suite, tmp_path / "run", workers=2)
    run = RunDir(tmp_path / "run")
    for scenario in ("noise", "glass"):
        lines = run.read_scenario(scenario)
        for size, rec, clean in zip(sizes, lines, run.read_scenario(run.read_manifest().id_scenario)):
            shifted = decode_image(run.image_path(rec["image"]).read_bytes(), rec["image"])
            assert shifted.size == size and rec["image"] != clean["image"]


def test_image_past_pillows_safety_limit_is_one_line(tmp_path, monkeypatch):
    """Pillow refuses images over twice Image.MAX_IMAGE_PIXELS (a decompression bomb):
    one line naming the sample, not a traceback (the limit lowered here to keep it small)."""
    root = make_llava_folder(tmp_path / "b", n_images=1, per_image=1, sizes=[(200, 200)], fmt="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(UserError, match=r"sample 0 \(img_0.png\): image refused as too large to decode safely"):
        load_benchmark(str(root))


def test_ten_thousand_questions_in_one_pass(tmp_path):
    """10k questions over 50 images: each distinct image corrupted once, every question's
    line written, and a rerun redoes nothing."""
    root = make_llava_folder(tmp_path / "big", n_images=50, per_image=1, sizes=[(64, 48)])
    qs = [{"question_id": q, "image": f"img_{q % 50}.jpg", "text": f"What is shown here ({q})?"} for q in range(10_000)]
    write_jsonl(root / "questions.jsonl", qs)
    write_jsonl(root / "answers.jsonl", [{"question_id": q, "text": "Gradients."} for q in range(10_000)])
    suite = _suite(tmp_path, ONE_CORRUPTION + "  - {name: typo, text: {name: KeyboardAug, severity: 1}}\n")
    out = tmp_path / "run"
    r = run_cli("shift", out, "--benchmark", root, "--suite", suite, "--workers", "2")
    assert r.returncode == 0, r.stderr
    run = RunDir(out)
    m = run.read_manifest()
    assert {e.name: e.n for e in m.scenarios} == {"big": 10_000, "bright": 10_000, "typo": 10_000}
    bright = run.read_scenario("bright")
    assert len({r["image"] for r in bright}) == 50
    index = [json.loads(line) for line in (out / "shifts" / ".images.jsonl").read_text().splitlines()]
    assert len(index) == 50  # one job per distinct image, not per question
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shifts").glob("*.jsonl")}
    r = run_cli("shift", out, "--benchmark", root, "--suite", suite, "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shifts").glob("*.jsonl")} == before
