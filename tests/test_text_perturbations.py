import json
import subprocess
import sys

import pytest

from emidbench.common.errors import UserError
from emidbench.shift.text import PERTURBATIONS, perturb_text
from tests.helpers import REPO, reference_dir


def questions() -> list[str]:
    ref = reference_dir("llava-bench-coco", "qa90_questions.jsonl")
    if ref is not None:
        return [json.loads(l)["text"] for l in ref.open()][:30]
    return ["What is the color of the two suitcases in the image?",
            "What are the main objects on the table in the image?",
            "Describe the following image in detail, including the surroundings.",
            "What might be the purpose of this particular arrangement of furniture?"] * 5


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def wordnet_available() -> bool:
    try:
        from emidbench.shift.text.wordnet import wordnet

        wordnet()
        return True
    except UserError:
        return False


@pytest.mark.parametrize("name", [n for n in PERTURBATIONS if n not in ("sr", "synonym")])
def test_every_perturbation_changes_text_deterministically(name):
    q = "What are the main objects on the wooden table in the picture, and what colours do they have?"
    a = perturb_text(q, name, 3, seed=1)
    assert a.changed and a.text != q
    assert perturb_text(q, name, 3, seed=1) == a
    assert any(perturb_text(q, name, 3, seed=s).text != a.text for s in (2, 3, 4))


def test_keyboard_level_orders_edit_distance():
    qs = questions()
    mean = {k: sum(edit_distance(q, perturb_text(q, "KeyboardAug", k, seed=i).text) for i, q in enumerate(qs)) / len(qs)
            for k in (1, 3, 5, 10)}
    assert 0 < mean[1] < mean[3] < mean[5] < mean[10], mean


def test_non_latin_passes_through_with_a_note():
    for text in ("이미지를 자세히 설명해 주세요.", "图片中有多少个形状？", "Περίγραψε την εικόνα λεπτομερώς."):
        out = perturb_text(text, "KeyboardAug", 3, seed=0)
        assert out.text == text and not out.changed and "passed through" in out.note
    assert perturb_text("Beschreibe das Bild ausführlich bitte.", "keyboard", 5, seed=0).changed


def test_bad_names_and_severities():
    with pytest.raises(UserError, match="unknown text perturbation 'keybord'"):
        perturb_text("x", "keybord", 1, 0)
    with pytest.raises(UserError, match="severity 11 out of range 1..10"):
        perturb_text("x", "KeyboardAug", 11, 0)


def test_same_result_in_another_process():
    q = "What are the main objects on the wooden table in the picture?"
    code = ("import json, sys; from emidbench.shift.text import perturb_text; "
            f"print(json.dumps([perturb_text({q!r}, n, 3, 7).text for n in ('KeyboardAug', 'ocr', 'word_swap')]))")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(h), "PATH": ""}).stdout for h in (1, 2)}
    assert len(outs) == 1 and json.loads(outs.pop())[0] == perturb_text(q, "KeyboardAug", 3, 7).text


@pytest.mark.skipif(not wordnet_available(), reason="WordNet not installed (Debian wordnet-base or NLTK corpus)")
def test_eda_synonym_replacement(tmp_path):
    from emidbench.shift.text.eda import STOP_WORDS, clean

    q = "What are the main objects on the table in the image? Describe the colors of the suitcases carefully."
    words = clean(q).split()
    for k in (4, 7):
        out = perturb_text(q, "sr", k, seed=3).text
        assert out == out.lower() and set(out) <= set("abcdefghijklmnopqrstuvwxyz ")
        assert out != clean(q)
        n = max(1, int(0.05 * k * len(words)))
        changed = {w for w in words if w not in STOP_WORDS and w not in out.split()}
        assert 1 <= len(changed) <= n
    assert perturb_text(q, "sr", 7, 3) == perturb_text(q, "sr", 7, 3)
    # same in another process, whatever the string hash seed (EDA itself would differ)
    code = f"from emidbench.shift.text import perturb_text; print(perturb_text({q!r}, 'sr', 7, 3).text)"
    outs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(h), "PATH": "", "HOME": str(tmp_path)}).stdout.strip()
            for h in (1, 2)}
    assert outs == {perturb_text(q, "sr", 7, 3).text}


def test_wordnet_missing_is_one_clear_error(tmp_path, monkeypatch):
    from emidbench.shift.text import wordnet as wn

    monkeypatch.setenv("EMIDBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="install Debian's wordnet-base"):
        wn.prepare_from_debian(tmp_path / "no-wordnet-here")


def test_lexnames_is_wordnets_list():
    from emidbench.shift.text.wordnet import lexnames_text

    lines = lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_preparing_draws_no_random_numbers():
    """The shift stage prepares text shifts on a thread beside the seeded corruptions: the
    imports, augmenters and WordNet lookups must leave the global generators alone, once
    the stage has imported on its own thread what draws at import (RNG_TOUCHING_IMPORTS)."""
    texts = questions()[:6]
    code = f"""
import importlib, json, random, numpy as np
from emidbench.shift.text import PERTURBATIONS, prepare_texts, wordnet
from emidbench.shift.texts import RNG_TOUCHING_IMPORTS
for module in RNG_TOUCHING_IMPORTS:  # as Questions.start does before its helper thread
    importlib.import_module(module)
random.seed(5); np.random.seed(5)
before = random.getstate(), np.random.get_state()[1].tolist()
names = [n for n in PERTURBATIONS if n not in ("sr", "synonym")]
try:
    wordnet.wordnet(); names += ["sr", "synonym"]
except Exception:
    pass
prepare_texts([(n, 3, {texts!r}) for n in names])
print(json.dumps([(random.getstate(), np.random.get_state()[1].tolist()) == before, sorted(names)]))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    same, names = json.loads(proc.stdout)
    assert same and "KeyboardAug" in names and "word_swap" in names
