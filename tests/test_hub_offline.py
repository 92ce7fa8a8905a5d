"""A hub id with the hub out of reach: one line at once (no huggingface_hub retries), a
"did you mean" for a near miss of a bundled name; local folders and copies in the Hugging
Face cache still load. The real CLI and the real libraries, with HF_ENDPOINT pointed at a
closed local port and no offline variable set (the probe decides)."""

import os
import shutil
import socket
import subprocess
import sys

import pytest

from emidbench.common import hub
from emidbench.common.errors import did_you_mean
from tests.helpers import REPO

COMMIT = "0123456789abcdef0123456789abcdef01234567"
NOISE = ("Retrying in", "thrown while requesting", "Traceback")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_env(tmp_path):
    """The environment of a machine whose hub does not answer: a closed port as HF_ENDPOINT,
    an empty Hugging Face cache, no offline variable, no proxy."""
    drop = {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_DATASETS_CACHE",
            "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.lower().endswith("_proxy")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", HF_HOME=str(tmp_path / "hf-home"),
               TOKENIZERS_PARALLELISM="false")
    return env


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "emidbench", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert not any(n in proc.stderr for n in NOISE), proc.stderr
    return lines[0]


def cache_repo(env, repo_id: str, repo_type: str = "model"):
    """The snapshot folder of `repo_id` in the (empty) Hugging Face cache of `env`, laid out
    as huggingface_hub lays out a download (refs/main -> snapshots/<commit>)."""
    kind = {"model": "models", "dataset": "datasets"}[repo_type]
    root = os.path.join(env["HF_HOME"], "hub", f"{kind}--{repo_id.replace('/', '--')}")
    os.makedirs(os.path.join(root, "refs"))
    with open(os.path.join(root, "refs", "main"), "w") as f:
        f.write(COMMIT)
    return os.path.join(root, "snapshots", COMMIT)


@pytest.mark.parametrize("benchmark", ["lmms-lab/llava-bench-coco", "llava-bench"])
def test_hub_dataset_out_of_reach_is_one_line(tmp_path, unreachable_env, benchmark):
    line = one_line(cli(unreachable_env, "shift", tmp_path / "run", "--benchmark", benchmark, "--dry-run"))
    assert line.startswith("emidbench: error: cannot reach the Hugging Face hub at http://127.0.0.1:")
    assert "for lmms-lab/llava-bench-coco," in line and "not in the local Hugging Face cache" in line
    assert "did you mean" not in line  # a known id is no typo
    assert not (tmp_path / "run").exists()


def test_mistyped_dataset_id_gets_did_you_mean(tmp_path, unreachable_env):
    line = one_line(cli(unreachable_env, "shift", tmp_path / "run", "--benchmark", "lmms-lab/llava-bench-cooc",
                        "--dry-run"))
    assert "for lmms-lab/llava-bench-cooc (did you mean 'lmms-lab/llava-bench-coco'?)" in line


def test_typo_of_bundled_model_is_one_line_with_did_you_mean(small_run, unreachable_env):
    line = one_line(cli(unreachable_env, "eval", small_run, "--model", "tiny-lava"))
    assert "cannot reach the Hugging Face hub" in line
    assert "for tiny-lava (did you mean 'tiny-llava'?)" in line and "local path" in line


def test_unknown_hub_model_has_no_did_you_mean(small_run, unreachable_env):
    line = one_line(cli(unreachable_env, "eval", small_run, "--model", "someorg/some-vlm"))
    assert "for someorg/some-vlm," in line and "did you mean" not in line


def test_offline_variable_is_honoured_without_probe(small_run, unreachable_env):
    env = {**unreachable_env, "TRANSFORMERS_OFFLINE": "1"}
    line = one_line(cli(env, "eval", small_run, "--model", "tiny-lava"))
    assert "for tiny-lava (did you mean 'tiny-llava'?): TRANSFORMERS_OFFLINE is set" in line


def test_paper_encoder_typo_gets_did_you_mean(unreachable_env):
    code = ("import sys\nfrom emidbench.common.errors import UserError\nfrom emidbench.embedders import make_embedder\n"
            "try:\n    make_embedder('paper', vision_encoder='mini-clp', text_encoder='mini-xlmr')\n"
            "except UserError as e:\n    print(e, file=sys.stderr); sys.exit(2)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=unreachable_env, capture_output=True,
                          text=True, timeout=600)
    line = one_line(proc)
    assert "for mini-clp (did you mean 'mini-clip'?)" in line


def test_local_model_folder_still_loads(small_run, tiny_llava_dir, unreachable_env):
    proc = cli(unreachable_env, "eval", small_run, "--model", tiny_llava_dir, "--name", "local",
               "--scenarios", "bench", "--max-new-tokens", "2")
    assert proc.returncode == 0, proc.stderr
    assert (small_run / "responses" / "local").is_dir()


def test_model_in_the_hub_cache_loads_without_the_hub(small_run, tiny_llava_dir, unreachable_env):
    shutil.copytree(tiny_llava_dir, cache_repo(unreachable_env, "someorg/tiny-vlm"))
    proc = cli(unreachable_env, "eval", small_run, "--model", "someorg/tiny-vlm", "--name", "cached",
               "--scenarios", "bench", "--max-new-tokens", "2")
    assert proc.returncode == 0, proc.stderr
    assert not any(n in proc.stderr for n in NOISE), proc.stderr
    assert (small_run / "responses" / "cached").is_dir()


def test_dataset_in_the_hub_cache_loads_without_the_hub(tmp_path, unreachable_env):
    import datasets

    from tests.conftest import sample_image

    data = os.path.join(cache_repo(unreachable_env, "someorg/tiny-bench", "dataset"), "data")
    os.makedirs(data)
    features = datasets.Features({"question_id": datasets.Value("int64"), "image": datasets.Image(),
                                  "question": datasets.Value("string"), "answer": datasets.Value("string")})
    rows = {"question_id": [0, 1], "image": [{"bytes": sample_image(i), "path": None} for i in range(2)],
            "question": ["What is it?", "What color?"], "answer": ["a picture", "red"]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(os.path.join(data, "train-00000-of-00001.parquet"))
    proc = cli(unreachable_env, "shift", tmp_path / "run", "--benchmark", "someorg/tiny-bench",
               "--columns", "text=question,reference=answer", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "tiny_bench" in proc.stdout
    assert not any(n in proc.stderr for n in NOISE), proc.stderr


# ------------------------------------------------------------------ the pieces, in process


def test_probe_of_a_closed_port_and_did_you_mean():
    assert hub.reachable(f"http://127.0.0.1:{closed_port()}") is False
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub.reachable(f"http://127.0.0.1:{server.getsockname()[1]}") is True
    assert did_you_mean("tiny-lava", ["tiny-llava", "mini-clip"]) == " (did you mean 'tiny-llava'?)"
    assert did_you_mean("tiny-llava", ["tiny-llava"]) == ""
    assert did_you_mean("someorg/some-vlm", ["tiny-llava", "mini-clip", "mini-xlmr"]) == ""


def test_offline_variables_and_proxy_target(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    assert hub.offline_variable("model") is None and hub.offline_variable("dataset") is None
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert hub.offline_variable("model") == "TRANSFORMERS_OFFLINE"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")  # datasets: its own variable wins
    assert hub.offline_variable("dataset") is None
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert hub.offline_variable("dataset") == "HF_DATASETS_OFFLINE"
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert hub._probe_target("https://huggingface.co") == ("huggingface.co", 443)
    assert hub._probe_target("http://mirror.local:8080/") == ("mirror.local", 8080)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    assert hub._probe_target("https://huggingface.co") == ("proxy.local", 3128)
