"""The layering ARCHITECTURE.md draws is the one in the code: a stage package (shift,
eval, score, report) never imports another stage package, and the layers beneath them
(common, rundir, benchmarks, embedders, assets) import no stage at all. Only the
entry points (cli, pipeline, catalog, __main__) chain stages."""

import ast
import sys
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "emidbench"
STAGES = {"shift", "eval", "score", "report"}
ENTRY_POINTS = {"cli", "pipeline", "catalog", "__main__"}
LOWER = {"common", "rundir", "benchmarks", "embedders", "assets"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in one file, relative imports resolved."""
    parts = list(path.relative_to(path.parents[len(path.relative_to(PACKAGE).parts)]).with_suffix("").parts)
    package = parts[:-1]  # a module's package; an __init__'s package is its folder, also parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                out.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return out


def owner(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "emidbench" and len(parts) > 1 else None


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for line, module in imported_modules(path):
            target = owner(module)
            if target is None or target == own or target not in STAGES:
                continue
            if own in STAGES or own in LOWER:
                found.append(f"{path.relative_to(REPO)}:{line}: {own} imports {module}")
            elif own not in ENTRY_POINTS:
                found.append(f"{path.relative_to(REPO)}:{line}: {own} (not an entry point) imports {module}")
    return found


def test_no_stage_imports_another_stage_and_no_lower_layer_imports_a_stage():
    assert violations() == []


def test_the_check_sees_a_cross_stage_import(tmp_path, monkeypatch):
    # the check itself can fail: a stage file importing another stage is reported
    fake = tmp_path / "emidbench"
    (fake / "score").mkdir(parents=True)
    (fake / "score" / "x.py").write_text("from emidbench.eval.cache import ResponseCache\n")
    (fake / "common").mkdir()
    (fake / "common" / "y.py").write_text("import emidbench.shift.visual\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert [v.split(": ", 1)[1] for v in violations()] == [
        "common imports emidbench.shift.visual", "score imports emidbench.eval.cache"]
