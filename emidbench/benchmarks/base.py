"""What every benchmark loader yields: samples in LLaVA-Bench's shape.

A sample's image is either its encoded bytes (generated benchmarks: mini, mini-domains)
or an `ImageRef` — where the image is (a file, a row of a memory-mapped dataset) — read
each time a step needs the bytes and let go after. Loaders of files and datasets give
refs, so a benchmark of 10k questions or of 4k+ photographs costs memory for its text,
not its images: the shift stage streams each image through its work once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

from PIL import Image

from emidbench.common.errors import UserError
from emidbench.common.hashing import content_hash
from emidbench.common.images import decode_image


class ImageRef:
    """An image a benchmark points at rather than holds. `read()` gives its encoded bytes
    (as the source has them) afresh each time; `hash` (sha256 of those bytes, its name in a
    run's store) is computed once. Samples of one image share one ref."""

    def __init__(self, read: Callable[[], bytes], name: str):
        self._read, self.name = read, name
        self.size: tuple[int, int] | None = None  # (width, height), once checked

    def read(self) -> bytes:
        return self._read()

    @cached_property
    def hash(self) -> str:
        return content_hash(self.read())

    def check(self, where: str) -> None:
        """Decode once (a bad image is one line naming `where`) and note the hash of the
        same bytes, so loading reads each image once more, not twice."""
        data = self.read()
        self.size = decode_image(data, where).size
        self.__dict__["hash"] = content_hash(data)

    def __repr__(self) -> str:
        return f"ImageRef({self.name!r})"


def image_file(path: Path, name: str, where: str) -> ImageRef:
    """A ref to an image file; reading it later fails with one line naming `where`."""
    return ImageRef(lambda: _read_file(path, name, where), name)


def _read_file(path: Path, name: str, where: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{where}: image {name!r} not found ({path})") from None
    except OSError as e:
        raise UserError(f"{where}: cannot read image {name!r} ({e.strerror or e})") from None


@dataclass(frozen=True)
class Sample:
    question_id: int | str
    image: bytes | ImageRef  # the encoded image (JPEG, PNG, ... as the source has it), or where it is
    image_name: str  # where it came from, for messages and context lookup
    text: str  # the question
    reference: str  # the reference answer (GPT-4's in LLaVA-Bench)
    category: str | None = None  # conv | detail | complex, where the benchmark has one
    context: str | None = None  # what a text-only judge is shown of the image
    translations: dict = field(default_factory=dict)  # language -> translated question
    # Choice tasks (classification, multiple choice): the options, in order; `reference`
    # is then the correct option's text. Empty: an open-ended question.
    choices: tuple[str, ...] = ()
    domain: str | None = None  # the sample's domain (a dataset's domain column), if any

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)

    def read_image(self) -> bytes:
        """The encoded image; for a ref, read now (hold it only as long as it is needed)."""
        return self.image.read() if isinstance(self.image, ImageRef) else self.image

    def image_size(self) -> tuple[int, int]:
        """(width, height) px, from the image's header (a checked ref knows it already)."""
        if isinstance(self.image, ImageRef) and self.image.size is not None:
            return self.image.size
        try:
            return Image.open(io.BytesIO(self.read_image())).size
        except Exception:
            self.open_image()  # raises the loader's clear UserError
            raise

    def open_image(self) -> Image.Image:
        return decode_image(self.read_image(), self.where)

    @property
    def where(self) -> str:
        return f"sample {self.question_id} ({self.image_name})"

    @cached_property
    def image_hash(self) -> str:
        """sha256 of the image bytes: the image's name in a run's store. Computed once; a
        suite looks it up for every scenario the sample is in."""
        return self.image.hash if isinstance(self.image, ImageRef) else content_hash(self.image)


@dataclass
class Benchmark:
    """An ID set, plus optional second visual domains for natural shifts
    (LLaVA-Bench COCO + In-the-Wild; mini + mini_wild)."""

    name: str  # the ID scenario name, e.g. "llava_bench_coco"
    samples: list[Sample]
    domains: dict[str, list[Sample]] = field(default_factory=dict)
    source: str = ""
    notes: list = field(default_factory=list)  # what the loader left out or changed, for the shift record

    def validate(self) -> "Benchmark":
        checked: dict = {}  # id -> the image (kept referenced so that no id is reused)
        for domain, samples in [(self.name, self.samples), *self.domains.items()]:
            if not samples:
                raise UserError(f"benchmark {domain}: no samples ({self.source})")
            seen: set = set()
            for s in samples:
                if s.question_id in seen:
                    raise UserError(f"benchmark {domain}: duplicate question_id {s.question_id!r} ({self.source})")
                seen.add(s.question_id)
                # each image decoded once, however many questions share it (and then let go)
                if id(s.image) not in checked:
                    checked[id(s.image)] = s.image
                    if isinstance(s.image, ImageRef):
                        s.image.check(s.where)
                    else:
                        s.open_image()
        return self

    def limit(self, n: int | None) -> "Benchmark":
        if n is None:
            return self
        return Benchmark(self.name, self.samples[:n], {k: v[:n] for k, v in self.domains.items()}, self.source,
                         list(self.notes))
