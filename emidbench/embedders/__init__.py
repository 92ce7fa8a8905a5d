"""Embedders: images and texts -> L2-normalised vectors, for EMI and the JSD bound.

An embedder subclasses `Embedder` below:
    name        registry name
    dim         width of its vectors (images and texts share one space)
    identity    a string that changes whenever its numbers would (weights, tokenizer,
                image preprocessing, pooling version): the embedding cache's key
    embed_images(list[bytes]) -> (n, dim) float32, rows L2-normalised
    embed_texts(list[str])    -> (n, dim) float32, rows L2-normalised
    describe()  -> dict for score.json

EMBEDDERS maps a name to a factory taking the score options (vision_encoder,
text_encoder, ...); unknown options are ignored by embedders that have no use for them.
"""

from typing import ClassVar, Protocol

import numpy as np

from emidbench.common.registry import Registry

EMBEDDERS: Registry = Registry("embedder", plugins=["emidbench.embedders.offline", "emidbench.embedders.paper"])


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


def make_embedder(name: str, **options):
    """The embedder registered as `name`, built with the score options."""
    return EMBEDDERS.get(name)(**options)
