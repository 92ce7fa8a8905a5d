import subprocess
import sys

from emidbench.rundir import RunDir
from tests.helpers import REPO, make_llava_folder, run_cli


def test_python_dash_m_is_the_console_script():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for verb in ("shift", "eval", "score", "report", "run", "list", "import-responses"):
        assert verb in proc.stdout
    console = subprocess.run([str(REPO / ".venv" / "bin" / "emidbench"), "--help"], capture_output=True, text=True) \
        if (REPO / ".venv" / "bin" / "emidbench").exists() else None
    if console is not None:
        assert console.stdout == proc.stdout


def test_every_verb_explains_itself():
    for verb in ("shift", "eval", "score", "report", "run", "list", "import-responses"):
        proc = run_cli(verb, "--help")
        assert proc.returncode == 0, (verb, proc.stderr)
        assert "Usage:" in proc.stdout


def test_unknown_verb_and_option_exit_2(tmp_path):
    proc = run_cli("shfit")
    assert proc.returncode == 2
    assert "No such command" in proc.stderr
    proc = run_cli("shift", tmp_path, "--benchmark", "mini", "--sevrity", "3")
    assert proc.returncode == 2
    assert "--sevrity" in proc.stderr
    proc = run_cli("shift", tmp_path / "r", "--benchmark", "mini", "--limit", "2", "--split-embedder", "clip")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == \
        ["emidbench: error: unknown split embedder 'clip' (known: pixel, offline, paper)"], proc.stderr
    assert not (tmp_path / "r").exists()


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path):
    bench = make_llava_folder(tmp_path / "b")
    lines = (bench / "questions.jsonl").read_text().splitlines()
    (bench / "questions.jsonl").write_text("\n".join([lines[0], "{broken", *lines[2:]]) + "\n")
    proc = run_cli("shift", tmp_path / "run", "--benchmark", bench)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "questions.jsonl:2: malformed JSON" in err[0], proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_file_where_a_folder_is_needed_is_one_line_exit_2(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    proc = run_cli("shift", afile, "--benchmark", "mini", "--limit", "2")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"emidbench: error: {afile}") and "Not a directory" in err[0], \
        proc.stderr
    assert afile.read_text() == "not a folder\n"


def test_the_seed_changes_the_shifts_not_the_id_data(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("synthetic:\n  grid: separate\n  visual:\n    - {name: gaussian_noise, severities: [3]}\n")
    for seed in ("0", "1"):
        proc = run_cli("shift", tmp_path / seed, "--benchmark", "mini", "--suite", suite, "--limit", "3",
                       "--seed", seed)
        assert proc.returncode == 0, proc.stderr
    a, b = RunDir(tmp_path / "0"), RunDir(tmp_path / "1")
    assert a.read_scenario("mini") == b.read_scenario("mini")  # same ID questions and images
    assert [r["image"] for r in a.read_scenario("mini_gaussian_noise_3")] != \
           [r["image"] for r in b.read_scenario("mini_gaussian_noise_3")]


def test_unknown_benchmark_exit_2(tmp_path):
    proc = run_cli("shift", tmp_path / "run", "--benchmark", "no-such-bench")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "emidbench: error: unknown benchmark 'no-such-bench': not a registered name "
        "(llava-bench, llava-bench-coco, mini, mini-domains), a folder, a file or a hub id"]


def test_missing_run_directory_stage(tmp_path):
    proc = run_cli("eval", tmp_path / "empty", "--model", "tiny-llava")
    assert proc.returncode == 2
    assert "emidbench shift" in proc.stderr


def test_module_runs_without_installation():
    # `python -m emidbench` from the source tree works like the console script.
    proc = subprocess.run([sys.executable, "-m", "emidbench", "list"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "suites" in proc.stdout and "corruptions" in proc.stdout
