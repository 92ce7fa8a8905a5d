"""Fixtures shared by the test files: a tiny LLaVA saved like a hub checkpoint and a
small run directory with shifted data. Nothing here needs the network."""

import os

import pytest

from tests.helpers import photo_like

# No test needs the network; the hub is unreachable on CI anyway.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_WORDS = (
    "user assistant : ? . , a the is are in of on what how many color shape shapes image picture describe "
    "detail there one two three red green blue yellow circle square triangle left right top bottom part "
    "be brief answer please english"
).split()


def build_tiny_llava(path, hidden: int = 32, layers: int = 1, image_size: int = 32, patch: int = 16, seed: int = 0):
    """An untrained tiny LLaVA built as the bundled one is (emidbench.assets.tiny_llava),
    smaller, saved with save_pretrained into `path` (loaded back like any hub checkpoint)."""
    from emidbench.assets import tiny_llava

    tok = tiny_llava.build_tokenizer(TINY_WORDS, model_max_length=512)
    processor = tiny_llava.build_processor(tok, image_size=image_size, patch=patch)
    # A large init spread: an untrained model whose answers depend on image and question, so
    # tests comparing answers (batched vs single, sharded vs not) would see a wrong pairing.
    model = tiny_llava.build_model(tok, hidden=hidden, layers=layers, vision_hidden=hidden, vision_layers=layers,
                                   seed=seed, heads=2, image_size=image_size, patch=patch, max_positions=512,
                                   initializer_range=0.2, tie_word_embeddings=False)
    # Untrained, it would often emit special tokens first (an empty answer after decoding).
    model.generation_config.suppress_tokens = tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "<s>", "<image>"])
    model.generation_config.min_new_tokens = 1
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory):
    """An untrained tiny LLaVA (processor, tokenizer, chat template) saved like a hub
    checkpoint; loaded back through the same from_pretrained path as hub models."""
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


def sample_image(seed: int, size=(48, 40), blur: float = 0.0) -> bytes:
    """A small PNG of tests.helpers.photo_like (the one image generator of the tests)."""
    return photo_like(seed, size, "PNG", blur)


QUESTIONS = ["What color is the circle?", "How many shapes are in the image?"]


def write_run(root, scenarios: dict, id_scenario: str | None = None):
    """Write RUN/shifts (manifest, scenario files, images) through emidbench.rundir.

    scenarios: name -> list of (question_id, image bytes, question text), in question order."""
    from emidbench.rundir import RunDir
    from emidbench.rundir.manifest import Manifest, ScenarioEntry, ShiftSpec

    rd = RunDir(root)
    entries = []
    names = list(scenarios)
    id_scenario = id_scenario or names[0]
    for name in names:
        records = []
        for qid, image, text in scenarios[name]:
            records.append({"question_id": qid, "image": rd.put_image(image, "png"), "text": text,
                            "category": "conv", "reference": f"reference answer {qid}"})
        rd.write_scenario(name, records)
        is_id = name == id_scenario
        entries.append(ScenarioEntry(name, "id" if is_id else "synthetic", "none" if is_id else "visual",
                                     None if is_id else ShiftSpec("defocus_blur", 5), None, len(records),
                                     f"{name}.jsonl"))
    rd.write_manifest(Manifest("test", id_scenario, 0, id_scenario, entries))
    return root


@pytest.fixture
def small_run(tmp_path):
    """A RUN with shifted data: scenarios `bench` (ID) and `bench_defocus_blur_5`, each 3
    images x 2 questions, question ids 0..5."""
    clean = [(i * 2 + j, sample_image(i), QUESTIONS[j]) for i in range(3) for j in range(2)]
    blurred = [(qid, sample_image(qid // 2, blur=2.0), q) for qid, _, q in clean]
    return write_run(tmp_path / "run", {"bench": clean, "bench_defocus_blur_5": blurred})


@pytest.fixture
def make_run(tmp_path):
    """A factory: make_run({scenario: [(question_id, image bytes, text), ...]}) -> RUN path."""
    counter = iter(range(10**6))

    def make(scenarios: dict, id_scenario: str | None = None):
        return write_run(tmp_path / f"run{next(counter)}", scenarios, id_scenario)

    return make


@pytest.fixture
def image_bytes():
    """sample_image(seed, size=(48, 40), blur=0.0) -> PNG bytes."""
    return sample_image
