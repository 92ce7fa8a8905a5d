"""Embedders: images and texts -> L2-normalised vectors, for EMI and the JSD bound.

An embedder subclasses `Embedder` below:
    name        registry name
    dim         width of its vectors (images and texts share one space)
    identity    a string that changes whenever its numbers would (weights, tokenizer,
                image preprocessing, pooling version): the embedding cache's key
    embed_images(list[bytes]) -> (n, dim) float32, rows L2-normalised
    embed_texts(list[str])    -> (n, dim) float32, rows L2-normalised
    describe()  -> dict for score.json

EMBEDDERS maps a name to a class built with one EmbedderOptions (below); an embedder
reads the fields it has a use for.
"""

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from emidbench.common.registry import Registry

EMBEDDERS: Registry = Registry("embedder", plugins=["emidbench.embedders.offline", "emidbench.embedders.paper"])


@dataclass(frozen=True)
class EmbedderOptions:
    """What an embedder is built with (score: ScoreOptions.embedder_options(); shift's
    easy/hard split: its split options)."""

    vision_encoder: str | None = None  # paper: the CLIP checkpoint (hub id, folder or bundled name)
    text_encoder: str | None = None  # paper: the XLM-R checkpoint
    device: str = "auto"  # paper: where the encoders run
    images_only: bool = False  # the split embeds images only: no text encoder is loaded (or downloaded)


class Embedder(Protocol):
    """What shift's split and the score stage ask of an embedder (subclass it)."""

    name: ClassVar[str]  # its registry name
    dim: int
    identity: str

    def embed_images(self, images: list[bytes]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def describe(self) -> dict:
        """What score.json records about it (proxy or not, checkpoints). Default: nothing."""
        return {}


def make_embedder(name: str, options: EmbedderOptions | None = None, **fields):
    """The embedder registered as `name`, built with `options` (or its fields as keywords)."""
    return EMBEDDERS.get(name)(options if options is not None else EmbedderOptions(**fields))
