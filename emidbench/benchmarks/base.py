"""What every benchmark loader yields: samples in LLaVA-Bench's shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from PIL import Image

from emidbench.common.errors import UserError
from emidbench.common.hashing import content_hash
from emidbench.common.images import decode_image


@dataclass(frozen=True)
class Sample:
    question_id: int | str
    image: bytes  # the encoded image as the source has it (JPEG, PNG, ...)
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

    def open_image(self) -> Image.Image:
        return decode_image(self.image, f"sample {self.question_id} ({self.image_name})")

    @cached_property
    def image_hash(self) -> str:
        """sha256 of the image bytes: the image's name in a run's store. Computed once; a
        suite looks it up for every scenario the sample is in."""
        return content_hash(self.image)


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
        for domain, samples in [(self.name, self.samples), *self.domains.items()]:
            if not samples:
                raise UserError(f"benchmark {domain}: no samples ({self.source})")
            seen: set = set()
            for s in samples:
                if s.question_id in seen:
                    raise UserError(f"benchmark {domain}: duplicate question_id {s.question_id!r} ({self.source})")
                seen.add(s.question_id)
                s.open_image()
        return self

    def limit(self, n: int | None) -> "Benchmark":
        if n is None:
            return self
        return Benchmark(self.name, self.samples[:n], {k: v[:n] for k, v in self.domains.items()}, self.source,
                         list(self.notes))
