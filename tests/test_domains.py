"""Domain suites (shifts/domains.yaml, domains-icl.yaml) and the in-context examples of their
ICL scenarios (emidbench/shift/domains.py), on the generated mini-domains benchmark and on
small hand-built sample sets."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from emidbench.benchmarks import load_benchmark
from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.benchmarks.choices import DEFAULT_TEMPLATE, ICL_SUFFIX, answer_line, render_question
from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.rundir import RunDir
from emidbench.shift import load_suite, plan_scenarios, run_shift
from emidbench.shift.domains import DomainSetup, by_domain, example_order, per_class_sample, select_examples
from tests.helpers import photo_like, run_cli

CLASSES = ("cat", "dog", "horse")


def samples(domain: str, n_per_class: int, first_qid: int = 0, classes=CLASSES) -> list[Sample]:
    out = []
    for i in range(n_per_class * len(classes)):
        out.append(Sample(first_qid + i, photo_like(first_qid + i, (32, 32), "PNG"), f"{domain}_{i}.png",
                          "What is in this image?", classes[i % len(classes)], choices=classes, domain=domain))
    return out


@pytest.fixture(scope="module")
def mini_domains():
    return load_benchmark("mini-domains")


@pytest.fixture(scope="module")
def icl_run(tmp_path_factory, mini_domains):
    out = tmp_path_factory.mktemp("icl") / "run"
    manifest = run_shift(mini_domains, "domains-icl", out, seed=3, per_class=2, icl="1,3")
    return out, manifest


# --------------------------------------------------------------------------- suites and names

def test_domain_suite_names_the_id_set_each_domain_and_each_icl_scenario():
    suite = load_suite("domains-icl")
    names = [p.name for p in plan_scenarios(suite, "pacs", ["cartoon", "sketch"], id_domain="photo")]
    assert names[:3] == ["pacs", "pacs_cartoon", "pacs_sketch"]
    assert set(names[3:]) == {f"pacs_{d}_icl{k}_{s}" for d in ("cartoon", "sketch") for k in (2, 4, 8)
                              for s in ("id", "target")} | {f"pacs_photo_icl{k}_id" for k in (2, 4, 8)}


def test_domains_section_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("description: x\ndomains:\n  per_clas: 3\n")
    with pytest.raises(UserError, match=r"mine.yaml:3: unknown key 'domains.per_clas' \(did you mean "
                                        r"'domains.per_class'\?\)"):
        load_suite(str(bad))
    bad.write_text("domains:\n  icl: [2, zero]\n")
    with pytest.raises(UserError, match=r"mine.yaml:2: .*'zero' is not a number of in-context examples"):
        load_suite(str(bad))
    bad.write_text("domains:\n  icl_source: [train]\n")
    with pytest.raises(UserError, match=r"unknown source 'train' \(use id, target or both"):
        load_suite(str(bad))


def test_options_need_a_domain_suite(mini_domains, tmp_path):
    with pytest.raises(UserError, match=r"--icl: suite paper-synthetic has no domains section"):
        run_shift(mini_domains, "paper-synthetic", tmp_path / "r", icl="2")


# --------------------------------------------------------------------------- grouping and sampling

def test_samples_are_grouped_by_their_domain_and_the_id_domain_is_chosen():
    mixed = samples("art", 2) + samples("photo", 2, 100)  # one set with a domain column
    d = by_domain(Benchmark("pacs", mixed), DomainSetup(id_domain="photo"), seed=0)
    assert d.id_domain == "photo" and [s.domain for s in d.bench.samples] == ["photo"] * 6
    assert list(d.bench.domains) == ["art"] and len(d.bench.domains["art"]) == 6
    first = by_domain(Benchmark("pacs", mixed), DomainSetup(), seed=0)
    assert first.id_domain == "art" and first.record["chosen_by"] == "first domain"
    with pytest.raises(UserError, match=r"--id-domain 'sketch': benchmark pacs has no such domain "
                                        r"\(its domains: art, photo\)"):
        by_domain(Benchmark("pacs", mixed), DomainSetup(id_domain="sketch"), seed=0)


def test_per_class_sampling_is_seeded_capped_and_keeps_the_benchmark_order():
    pool = samples("art", 5)
    a = per_class_sample(pool, 2, seed=0, domain="art")
    assert a == per_class_sample(pool, 2, seed=0, domain="art")
    assert Counter(s.reference for s in a) == {c: 2 for c in CLASSES}
    assert [s.question_id for s in a] == sorted(s.question_id for s in a)  # the benchmark's order
    others = [per_class_sample(pool, 2, seed=k, domain="art") for k in range(1, 6)]
    assert any([s.question_id for s in o] != [s.question_id for s in a] for o in others)  # the seed decides
    assert per_class_sample(pool, None, 0, "art") == pool


def test_per_class_counts_are_recorded_in_the_manifest(icl_run):
    _, manifest = icl_run
    rec = manifest.extra["domain_suite"]
    assert rec["id_domain"] == "plain" and rec["per_class"] == 2 and rec["icl"] == [1, 3]
    assert rec["counts"]["sketch"] == {"loaded": 36, "kept": 6, "per_class": {"circle": 2, "square": 2,
                                                                               "triangle": 2}}
    assert manifest.extra["aliases"]["mini_domains_plain"] == "mini_domains"
    entry = {s.name: s for s in manifest.scenarios}["mini_domains_sketch_icl3_target"]
    assert entry.family == "natural" and entry.extra["domain"] == "sketch"
    assert entry.extra["icl"] == {"k": 3, "source": "target"}


# --------------------------------------------------------------------------- example selection

def test_examples_are_deterministic_stratified_nested_and_never_the_item():
    pool = samples("art", 4)
    twin = Sample(999, pool[0].image, "copy.png", "What is in this image?", "dog", choices=CLASSES, domain="art")
    pool.append(twin)  # the same image under another id: a leak if it were shown
    item = pool[0]
    order = example_order(item, pool, seed=0, source="target", pool_domain="art")
    assert order == example_order(item, pool, seed=0, source="target", pool_domain="art")
    assert item not in order and twin not in order
    assert len(order) == len(pool) - 2
    for k in range(1, len(order) + 1):
        counts = Counter(s.reference for s in order[:k])
        if k <= 9:  # while every class has samples left (cat has 3 besides the item)
            assert max(counts.values()) - min(counts.get(c, 0) for c in CLASSES) <= 1, (k, counts)
        assert select_examples(item, pool, k, 0, "target", "art") == order[:k]  # nested in K
    orders = {tuple(s.question_id for s in example_order(pool[i], pool, 0, "target", "art")[:3]) for i in range(4)}
    assert len(orders) > 1  # drawn per item
    assert example_order(item, pool, 1, "target", "art") != order  # and per seed


def test_icl_lines_carry_their_examples_from_the_right_pool(icl_run, mini_domains):
    out, _ = icl_run
    rd = RunDir(out)
    by_image = {}
    for d in [mini_domains.samples, *mini_domains.domains.values()]:
        for s in d:
            by_image[s.image_hash] = s
    for name, pool_domain in (("mini_domains_sketch_icl3_target", "sketch"), ("mini_domains_sketch_icl3_id", "plain"),
                              ("mini_domains_plain_icl1_id", "plain")):
        lines = read_jsonl(rd.scenario_path(name))
        assert len(lines) == 6
        for line in lines:
            assert line["text"].endswith(ICL_SUFFIX)
            assert line["choices"] == ["circle", "square", "triangle"]
            k = 3 if "icl3" in name else 1
            assert len(line["examples"]) == k
            for ex in line["examples"]:
                assert rd.image_intact(ex["image"]) and ex["image"] != line["image"]
                sample = by_image[ex["image"].split(".")[0]]
                assert sample.domain == pool_domain
                assert ex["answer"] == answer_line(sample.reference)
                assert ex["text"] == render_question(sample.text, sample.choices)
    zero_shot = read_jsonl(rd.scenario_path("mini_domains_sketch"))
    assert "examples" not in zero_shot[0] and not zero_shot[0]["text"].endswith(ICL_SUFFIX)
    assert {r["question_id"] for r in zero_shot} == {r["question_id"] for r in
                                                     read_jsonl(rd.scenario_path("mini_domains_sketch_icl3_id"))}


def test_same_seed_same_bytes_and_the_examples_change_with_the_seed(icl_run, mini_domains, tmp_path):
    out, _ = icl_run
    again = tmp_path / "again"
    run_shift(mini_domains, "domains-icl", again, seed=3, per_class=2, icl="1,3")
    name = "mini_domains_photo_icl3_target.jsonl"
    assert (again / "shifts" / name).read_bytes() == (out / "shifts" / name).read_bytes()
    other = tmp_path / "other"
    run_shift(mini_domains, "domains-icl", other, seed=4, per_class=2, icl="1,3")
    assert (other / "shifts" / name).read_bytes() != (out / "shifts" / name).read_bytes()


def test_a_lost_example_image_is_made_again_on_a_rerun(mini_domains, tmp_path):
    out = tmp_path / "r"
    run_shift(mini_domains, "domains-icl", out, per_class=1, icl="2")
    rd = RunDir(out)
    name = "mini_domains_photo_icl2_target"
    line = read_jsonl(rd.scenario_path(name))[0]
    example = line["examples"][0]["image"]
    assert example not in {r["image"] for sc in ("mini_domains", "mini_domains_photo", "mini_domains_sketch",
                                                 "mini_domains_microscopy") for r in read_jsonl(rd.scenario_path(sc))}
    before = rd.scenario_path(name).read_bytes()
    rd.image_path(example).unlink()
    run_shift(mini_domains, "domains-icl", out, per_class=1, icl="2")
    assert rd.image_intact(example) and rd.scenario_path(name).read_bytes() == before


def test_corruptions_compose_with_a_domain_suite(mini_domains, tmp_path):
    suite = tmp_path / "mix.yaml"
    suite.write_text("include: [domains]\nsynthetic:\n  visual: [{name: defocus_blur, severities: [2]}]\n"
                     "  text: [{name: keyboard, severities: [1]}]\n")
    manifest = run_shift(mini_domains, str(suite), tmp_path / "r", per_class=1)
    names = [s.name for s in manifest.scenarios]
    assert names[0] == "mini_domains" and {"mini_domains_defocus_blur_2", "mini_domains_keyboard_1",
                                           "mini_domains_photo", "mini_domains_sketch"} <= set(names)
    blurred = read_jsonl(RunDir(tmp_path / "r").scenario_path("mini_domains_defocus_blur_2"))
    assert len(blurred) == 3 and all(r["choices"] == ["circle", "square", "triangle"] for r in blurred)
    assert all(r["domain"] == "plain" for r in blurred)  # the ID domain's samples, corrupted
    typed = read_jsonl(RunDir(tmp_path / "r").scenario_path("mini_domains_keyboard_1"))
    clean = read_jsonl(RunDir(tmp_path / "r").scenario_path("mini_domains"))
    for t, c in zip(typed, clean):  # the text shift perturbs the stem; the template and the options stay
        assert t["text"] != c["text"] and t["choices"] == c["choices"]
        before, after = DEFAULT_TEMPLATE.split("{question}")
        assert t["text"].startswith(before) and before.startswith("Given the image, answer the following question")
        assert t["text"].endswith(after.format(choices="['circle', 'square', 'triangle']"))
        assert "Answer Choice: [Your Answer Choice Here]" in after


# --------------------------------------------------------------------------- bad input on the command line

def test_bad_domain_and_too_large_k_are_one_line_and_exit_2(tmp_path):
    r = run_cli("shift", tmp_path / "a", "-b", "mini-domains", "--suite", "domains", "--id-domain", "cartoon")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["emidbench: error: --id-domain 'cartoon': benchmark mini_domains has "
                                             "no such domain (its domains: plain, photo, sketch, microscopy)"]
    r = run_cli("shift", tmp_path / "b", "-b", "mini-domains", "--suite", "domains-icl", "--icl", "36")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--icl 36 (mini_domains_plain_icl36_id): the pool of domain 'plain' has only 35 " \
                               "examples" in lines[0], lines
    assert not (tmp_path / "b" / "shifts").exists()  # refused before anything was written


def test_dry_run_lists_the_icl_scenarios(tmp_path):
    r = run_cli("shift", tmp_path / "a", "-b", "mini-domains", "--suite", "domains-icl", "--icl", "2",
                "--icl-source", "target", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "mini_domains_sketch_icl2_target" in r.stdout and "_icl2_id" not in r.stdout
    assert json.dumps("icl 2 (target)")[1:-1] in r.stdout


def test_the_demo_config_plans_the_domain_and_icl_scenarios(tmp_path):
    from emidbench.pipeline import load_run_config
    from tests.helpers import REPO

    cfg = load_run_config(REPO / "configs" / "mini-domains.yaml", overrides={"out": str(tmp_path / "r")})
    assert cfg["benchmark"] == "mini-domains" and cfg["suite"] == "domains-icl"
    bench = load_benchmark(cfg["benchmark"])
    manifest = run_shift(bench, cfg["suite"], tmp_path / "r", seed=cfg["seed"], **cfg["shift"])
    names = [s.name for s in manifest.scenarios]
    assert names[:4] == ["mini_domains", "mini_domains_photo", "mini_domains_sketch", "mini_domains_microscopy"]
    assert len(names) == 4 + 2 + 3 * 2 * 2 and "mini_domains_microscopy_icl4_id" in names
    assert {s.n for s in manifest.scenarios} == {12}  # per_class 4 x 3 shapes
