"""A classification benchmark in DomainBed's folder layout: `<root>/<domain>/<class>/<image>`.

This is how DomainBed (and Zhang et al.'s code, which reads data_dir/<dataset>/<domain>/
<class>/) lays out PACS, VLCS, OfficeHome, DomainNet, TerraIncognita and NICO++, and how
the VLCS copy on the hub ships (PTeterwak/DomainBed_EasyHard: `all|easy|hard/VLCS.tar.gz`,
extracted). Every image is a choice sample: the question is the default stem, the options
are the class folders' names (sorted, the union over the domains), the reference is its
class folder's name, the domain its domain folder's name, the question_id
`<domain>/<class>/<file>`. Files are taken in name order (Zhang et al. took directory
order, which the file system decides); hidden entries and non-image files are skipped.
"""

from __future__ import annotations

from pathlib import Path

from emidbench.benchmarks.base import Benchmark, Sample, image_file
from emidbench.common.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# files that make a folder something else: a `datasets` copy, a LLaVA eval folder
OTHER_LAYOUTS = ("state.json", "dataset_dict.json", "dataset_info.json", "questions.jsonl")


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def looks_like_domain_folder(root: Path) -> bool:
    """Subfolders (domains) of subfolders (classes) holding images, and nothing that makes
    it a `datasets` copy or a LLaVA folder."""
    root = Path(root)
    if not root.is_dir() or any((root / f).exists() for f in OTHER_LAYOUTS):
        return False
    if any(p.suffix in (".parquet", ".arrow", ".jsonl") for p in root.iterdir() if p.is_file()):
        return False
    domains = _visible_dirs(root)
    return bool(domains) and all(_visible_dirs(d) for d in domains) and any(
        _images(c) for d in domains for c in _visible_dirs(d))


def load_domain_folder(root: Path, name: str | None = None) -> Benchmark:
    from emidbench.benchmarks.choices import DEFAULT_STEM

    root = Path(root)
    domains = _visible_dirs(root)
    classes = tuple(sorted({c.name for d in domains for c in _visible_dirs(d)}))
    if len(classes) < 2:
        raise UserError(f"{root}: a domain folder needs at least 2 class folders to choose from (found "
                        f"{', '.join(classes) or 'none'})")
    samples = []
    for d in domains:
        for c in _visible_dirs(d):
            for f in _images(c):
                rel = f.relative_to(root).as_posix()
                samples.append(Sample(question_id=rel, image=image_file(f, rel, str(root)), image_name=rel,
                                      text=DEFAULT_STEM,
                                      reference=c.name, choices=classes, domain=d.name))
    return Benchmark(name=name or root.name.replace("-", "_"), samples=samples, source=str(root)).validate()
