"""Embedders: images and texts -> L2-normalised vectors, for EMI and the JSD bound.

An embedder has `name`, `dim`, `identity` (changes when its weights do; cache key),
`embed_images(list[bytes]) -> (n, dim) float32` and `embed_texts(list[str]) -> (n, dim)`.
EMBEDDERS maps a name to a factory taking the score options.
"""

from emidbench.registry import Registry

EMBEDDERS: Registry = Registry("embedder")

from emidbench.score.embedders import offline, paper  # noqa: E402,F401
