import json
from dataclasses import replace

import numpy as np
import pytest

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.common.errors import UserError
from emidbench.common.images import decode_image
from emidbench.rundir import RunDir
from emidbench.shift import load_suite, plan_scenarios, run_shift, visual
from emidbench.shift.visual import corrupt_image
from tests.helpers import photo_like

LANGS = {"German": "Was ist das?", "Korean": "이것은 무엇입니까?", "Chinese": "这是什么？", "Greek": "Τι είναι αυτό;",
         "Arabic": "ما هذا؟", "Hindi": "यह क्या है?"}


def tiny_bench(n_images=3, per_image=2, size=(64, 48), wild=2) -> Benchmark:
    def samples(domain, n, first):
        out = []
        for i in range(n):
            img = photo_like(first + i, size=size, fmt="PNG")
            for j in range(per_image):
                qid = first + i * per_image + j
                out.append(Sample(qid, img, f"{domain}_{i}.png", f"What colour is the thing number {qid} here?",
                                  f"Reference answer {qid}.", "conv", f"context {i}", dict(LANGS)))
        return out

    return Benchmark("bench", samples("bench", n_images, 0), {"bench_wild": samples("bench_wild", wild, 100)})


def test_paper_61_grid():
    plans = plan_scenarios(load_suite("paper-61"), "llava_bench_coco", ["llava_bench_in_the_wild"])
    names = [p.name for p in plans]
    assert len(names) == 62 == len(set(names))
    assert names[0] == "llava_bench_coco"
    assert sum(p.family == "synthetic" for p in plans) == 34
    assert sum(p.family == "natural" for p in plans) == 27
    for n in ("llava_bench_coco_frost_3", "llava_bench_coco_sr_4", "llava_bench_coco_defocus_blur_5_KeyboardAug_3",
              "llava_bench_coco_frost_3_sr_4", "llava_bench_coco_German", "llava_bench_in_the_wild_hard_Korean",
              "llava_bench_in_the_wild_easy_English", "llava_bench_in_the_wild_normal_Hindi"):
        assert n in names
    assert "llava_bench_coco_English" not in names  # the ID set, once
    by = {p.name: p for p in plans}
    assert by["llava_bench_coco_frost_3_sr_4"].modality == "joint"
    assert by["llava_bench_coco_German"].modality == "text"
    assert by["llava_bench_in_the_wild_easy_English"].modality == "visual"
    assert by["llava_bench_in_the_wild_hard_Korean"].modality == "joint"
    assert len(plan_scenarios(load_suite("paper-synthetic"), "x", [])) == 35
    assert len(plan_scenarios(load_suite("paper-natural"), "x", ["y"])) == 28
    assert len(plan_scenarios(load_suite("imagenet-c"), "x", [])) == 96
    assert len(plan_scenarios(load_suite("text-noise"), "x", [])) == 46


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "shifts").rglob("*"))
            if p.is_file() and p.name != ".progress.json"}


def test_run_writes_the_run_directory_deterministically(tmp_path):
    bench = tiny_bench()
    m = run_shift(bench, "paper-61", tmp_path / "a", seed=3)
    assert len(m.scenarios) == 62
    rd = RunDir(tmp_path / "a")
    back = rd.read_manifest()
    assert back.id_scenario == "bench" and back.get("bench").extra["alias"] == "bench_English"
    e = back.get("bench_frost_3_sr_4")
    assert (e.family, e.modality, e.visual.name, e.visual.severity, e.text.name, e.text.severity, e.n) == \
        ("synthetic", "joint", "frost", 3, "sr", 4, 6)
    recs = rd.read_scenario("bench_frost_3_sr_4")
    assert [r["question_id"] for r in recs] == [0, 1, 2, 3, 4, 5]
    assert set(recs[0]) == {"question_id", "image", "text", "category", "reference", "context"}
    assert recs[0]["text"] == recs[0]["text"].lower()  # EDA lower-cases
    assert (rd.images / recs[0]["image"]).is_file()
    ger = rd.read_scenario("bench_German")
    assert ger[0]["text"] == "Was ist das? Please answer in English."
    # easy/hard split of the second domain: halves of its 4 questions, recorded
    split = back.extra["splits"]["bench_wild"]
    assert sorted(split["easy"] + split["hard"]) == split["normal"] == [100, 101, 102, 103]
    assert back.get("bench_wild_easy_Korean").n == 2
    # same seed -> same bytes; 2 workers -> same bytes
    run_shift(bench, "paper-61", tmp_path / "b", seed=3, workers=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    run_shift(bench, "paper-61", tmp_path / "c", seed=4)
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_each_distinct_corruption_is_computed_once(tmp_path, monkeypatch):
    calls = []
    orig = visual.Corruption.__call__

    def counting(self, image, severity):
        calls.append((self.name, severity, image.tobytes()[:64]))
        return orig(self, image, severity)

    monkeypatch.setattr(visual.Corruption, "__call__", counting)
    bench = tiny_bench(n_images=3, per_image=3)
    run_shift(bench, "paper-synthetic", tmp_path / "r")
    # 3 distinct images x 6 (corruption, severity) - not x 5 text variants x 3 questions
    assert len(calls) == 18 == len(set(calls))
    n_images = len(list((tmp_path / "r" / "shifts" / "images").iterdir()))
    assert n_images == 3 + 18  # originals stored once, each corrupted image once


def test_resume_finishes_only_what_is_missing(tmp_path, monkeypatch):
    bench = tiny_bench()
    run_shift(bench, "paper-synthetic", tmp_path / "r")
    rd = RunDir(tmp_path / "r")
    before = _files(tmp_path / "r")
    rd.scenario_path("bench_frost_5_sr_7").unlink()
    calls = []
    orig = visual.Corruption.__call__
    monkeypatch.setattr(visual.Corruption, "__call__", lambda self, im, s: calls.append(self.name) or orig(self, im, s))
    run_shift(bench, "paper-synthetic", tmp_path / "r")
    assert calls == []  # its images are stored and intact: only the file is rewritten
    assert _files(tmp_path / "r") == before
    # lose the scenario and its frost-5 images: exactly those images are corrupted again
    index = [json.loads(line) for line in (rd.shifts / ".images.jsonl").read_text().splitlines()]
    frost5 = [r["image"] for r in index if (r["corruption"], r["severity"]) == ("frost", 5)]
    assert len(frost5) == 3
    for name in frost5:
        (rd.images / name).unlink()
    rd.scenario_path("bench_frost_5_sr_7").unlink()
    run_shift(bench, "paper-synthetic", tmp_path / "r")
    assert calls == ["frost"] * 3
    assert _files(tmp_path / "r") == before


def test_a_rerun_repairs_lost_and_damaged_images_of_finished_scenarios(tmp_path, monkeypatch):
    """Scenario files intact, images not: a rerun notices, makes exactly those images again
    (a corrupted one by corrupting, an ID one from the benchmark) and nothing else."""
    bench = tiny_bench()
    run_shift(bench, "paper-synthetic", tmp_path / "r")
    rd = RunDir(tmp_path / "r")
    before = _files(tmp_path / "r")
    index = [json.loads(line) for line in (rd.shifts / ".images.jsonl").read_text().splitlines()]
    damaged = next(r["image"] for r in index if (r["corruption"], r["severity"]) == ("defocus_blur", 3))
    (rd.images / damaged).write_bytes((rd.images / damaged).read_bytes()[:100])  # torn
    lost_id = rd.read_scenario("bench")[0]["image"]
    (rd.images / lost_id).unlink()
    calls = []
    orig = visual.Corruption.__call__
    monkeypatch.setattr(visual.Corruption, "__call__", lambda self, im, s: calls.append((self.name, s)) or orig(self, im, s))
    run_shift(bench, "paper-synthetic", tmp_path / "r")
    assert calls == [("defocus_blur", 3)]
    assert _files(tmp_path / "r") == before


def test_corruptions_change_images_and_severity_orders_the_change():
    img = decode_image(photo_like(5, size=(96, 96), fmt="PNG"), "x")
    base = np.asarray(img, dtype=float)
    for name in ("defocus_blur", "frost"):
        dists = [np.abs(corrupt_image(img, name, s, seed=1).astype(float) - base).mean() for s in (1, 3, 5)]
        assert 0 < dists[0] < dists[1] < dists[2], (name, dists)
    a = corrupt_image(img, "gaussian_noise", 3, seed=1)
    assert np.array_equal(a, corrupt_image(img, "gaussian_noise", 3, seed=1))
    assert not np.array_equal(a, corrupt_image(img, "gaussian_noise", 3, seed=2))
    state = np.random.get_state()[1].copy()
    corrupt_image(img, "gaussian_noise", 3, seed=1)
    assert np.array_equal(state, np.random.get_state()[1])  # the caller's global RNG is untouched


@pytest.mark.parametrize("text,match", [
    ("synthetic:\n  visual:\n    - {name: fogg, severities: [1]}\n", "unknown corruption 'fogg'"),
    ("synthetic:\n  visual:\n    - {name: fog, severities: [7]}\n", "severity 7 out of range 1..5"),
    ("synthetic:\n  visual:\n    - {name: fog, severites: [1]}\n", "unknown key 'synthetic.visual\\[1\\].severites' \\(did you mean 'synthetic.visual\\[1\\].severities'\\?\\)"),
    ("synthetic:\n  text:\n    - {name: KeyboardAugg, severities: [1]}\n", "unknown text perturbation 'KeyboardAugg'"),
    ("natural:\n  splits: [medium]\n", "unknown split 'medium'"),
    ("synthetic: [1, 2\n", "not valid YAML"),
    ("- synthetic: {}\n", "'the suite' must be a mapping \\(key: value\\), not a list$"),
    ("description: x\ninclude: [paper-synthtic]\n",
     "mine.yaml:2: include: unknown suite 'paper-synthtic' \\(did you mean 'paper-synthetic'\\? built in"),
])
def test_bad_suites(tmp_path, text, match):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        run_shift(tiny_bench(), path, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_unknown_suite_and_small_images(tmp_path):
    with pytest.raises(UserError, match="unknown suite 'paper-62'"):
        run_shift(tiny_bench(), "paper-62", tmp_path / "r")
    with pytest.raises(UserError, match=r"sample 0 \(bench_0.png\): image is 24x20 px"):
        run_shift(tiny_bench(size=(24, 20)), "paper-synthetic", tmp_path / "r")
    assert not (tmp_path / "r").exists()
    run_shift(tiny_bench(size=(24, 20)), "paper-natural", tmp_path / "n")  # no corruption: small is fine


def test_languages_without_translations_are_skipped_with_a_note(tmp_path, capsys):
    bench = tiny_bench()
    bench.samples = [replace(s, translations={}) for s in bench.samples]
    bench.domains = {}
    from rich.console import Console

    m = run_shift(bench, "paper-natural", tmp_path / "r", console=Console(stderr=True))
    assert [s.name for s in m.scenarios] == ["bench"]
    err = capsys.readouterr().err
    assert "languages skipped" in err and "Arabic" in err and "no second visual domain" in err
    assert any("languages skipped" in n for n in m.extra["notes"])


def test_custom_suite_and_non_latin_pass_through(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("scenarios:\n  - {name: typo_ko, text: {name: KeyboardAug, severity: 3}}\n")
    bench = tiny_bench()
    bench.samples = [replace(s, text=s.translations["Korean"]) for s in bench.samples]
    m = run_shift(bench, path, tmp_path / "r")
    e = m.scenarios[1]
    assert (e.name, e.family, e.modality) == ("typo_ko", "custom", "text")
    assert e.extra["passed_through"] == [0, 1, 2, 3, 4, 5]
    assert RunDir(tmp_path / "r").read_scenario("typo_ko")[0]["text"] == LANGS["Korean"]


def test_translator_model(tmp_path, tiny_llava_dir):
    """A tiny locally built seq2seq checkpoint, loaded by path like a hub translator."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>", "what", "colour", "is", "the", "thing", "here"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    cfg = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, pad_token_id=0,
                       eos_token_id=1, decoder_start_token_id=0, max_position_embeddings=256)
    import torch

    torch.manual_seed(0)
    MarianMTModel(cfg).save_pretrained(tmp_path / "mt")
    fast.save_pretrained(tmp_path / "mt")
    bench = tiny_bench()
    bench.samples = [replace(s, translations={}) for s in bench.samples]
    bench.domains = {}
    suite = tmp_path / "de.yaml"
    suite.write_text("natural:\n  languages: [German]\n")
    run_shift(bench, suite, tmp_path / "r1", translator=str(tmp_path / "mt"))
    run_shift(bench, suite, tmp_path / "r2", translator=str(tmp_path / "mt"))
    a = RunDir(tmp_path / "r1").read_scenario("bench_German")
    assert all(r["text"].endswith(" Please answer in English.") for r in a)
    assert a == RunDir(tmp_path / "r2").read_scenario("bench_German")
    with pytest.raises(UserError, match=r"model path \S*nope does not exist$"):
        run_shift(bench, suite, tmp_path / "r3", translator=str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"is not a seq2seq translation model"):  # a folder of the wrong kind
        run_shift(bench, suite, tmp_path / "r4", translator=str(tiny_llava_dir))


def test_dry_run_writes_nothing(tmp_path):
    m = run_shift(tiny_bench(), "paper-61", tmp_path / "r", dry_run=True)
    assert m.scenarios == [] and not (tmp_path / "r").exists()


def test_dry_run_shows_the_plan_a_run_would_make(tmp_path, capsys):
    """Languages nothing can provide (here a typo) are left out of the table with the run's
    note; a bad split-embedder name fails already."""
    from rich.console import Console

    suite = tmp_path / "nat.yaml"
    suite.write_text("natural:\n  languages: [English, German, Germn]\n")
    run_shift(tiny_bench(), suite, tmp_path / "r", dry_run=True, console=Console(file=None, width=200))
    out = capsys.readouterr().out
    assert "note: languages skipped" in out and "Germn" in out.split("note:")[1].splitlines()[0]
    assert "bench_German" in out and "bench_Germn" not in out
    with pytest.raises(UserError, match="unknown split embedder 'pixle'"):
        run_shift(tiny_bench(), suite, tmp_path / "r", dry_run=True, split_embedder="pixle")
    assert not (tmp_path / "r").exists()


def test_missing_wordnet_stops_the_run_and_the_rerun_reuses_its_images(tmp_path, monkeypatch):
    """WordNet is loaded on a helper thread beside the image work; its absence must still
    end the run with the one clear error, and what was stored must be reused later."""
    import nltk

    from emidbench.shift.text import wordnet as wn

    suite = tmp_path / "sr.yaml"
    suite.write_text("synthetic:\n  grid: full\n  visual:\n    - {name: frost, severities: [1, 3]}\n"
                     "  text:\n    - {name: sr, severities: [4]}\n")
    calls = []
    orig = visual.Corruption.__call__
    monkeypatch.setattr(visual.Corruption, "__call__", lambda self, im, s: calls.append(s) or orig(self, im, s))
    bench = tiny_bench(n_images=4)
    with monkeypatch.context() as no_wordnet:
        no_wordnet.setattr(wn, "_READY", None)
        no_wordnet.setattr(nltk.data, "path", [])
        no_wordnet.setattr(wn, "DEBIAN_WORDNET", tmp_path / "no-wordnet")
        no_wordnet.setenv("EMIDBENCH_CACHE", str(tmp_path / "cache"))
        with pytest.raises(UserError, match="install Debian's wordnet-base"):
            run_shift(bench, suite, tmp_path / "r")
    assert not RunDir(tmp_path / "r").manifest_path.exists()
    try:
        wn.wordnet()
    except UserError:
        pytest.skip("WordNet not installed (Debian wordnet-base or NLTK corpus): rerun not checked")
    first = len(calls)
    m = run_shift(bench, suite, tmp_path / "r")
    assert len(m.scenarios) == 1 + 2 + 1 + 2  # ID, 2 visual, 1 text, 2 joint
    assert len(calls) == 4 * 2 and first <= len(calls)  # each (image, severity) corrupted once over both runs


def test_split_by_a_learned_image_embedder(tmp_path):
    """--split-embedder paper ranks the second domain with the score stage's CLIP tower
    (here the bundled toy one) instead of the pixel proxy; what ranked it is recorded."""
    suite = tmp_path / "wild.yaml"
    suite.write_text("natural:\n  languages: [English]\n  splits: [easy, hard]\n")
    bench = tiny_bench(n_images=3, per_image=1, size=(64, 64), wild=6)
    pixel = run_shift(bench, suite, tmp_path / "pixel").extra["splits"]["bench_wild"]
    # images only: the text encoder is never loaded (an absent one does not matter)
    m = run_shift(bench, suite, tmp_path / "clip", split_embedder="paper",
                  split_options={"vision_encoder": "mini-clip", "text_encoder": str(tmp_path / "absent-xlmr")})
    split = m.extra["splits"]["bench_wild"]
    assert split["embedder"].startswith("paper:") and pixel["embedder"].startswith("pixel")
    assert split["distance"] != pixel["distance"]
    dist = {int(k): v for k, v in split["distance"].items()}
    assert len(split["easy"]) == 3 and sorted(split["easy"] + split["hard"]) == split["normal"]
    assert max(dist[q] for q in split["easy"]) <= min(dist[q] for q in split["hard"])
    assert [r["question_id"] for r in RunDir(tmp_path / "clip").read_scenario("bench_wild_hard_English")] == \
        split["hard"]
    with pytest.raises(UserError, match=r"unknown split embedder 'clip' \(known: pixel, offline, paper\)"):
        run_shift(bench, suite, tmp_path / "bad", split_embedder="clip")
