"""Embedders: images and texts -> L2-normalised vectors, for EMI and the JSD bound.

An embedder has
    name        registry name
    dim         width of its vectors (images and texts share one space)
    identity    a string that changes whenever its numbers would (weights, tokenizer,
                image preprocessing, pooling version): the embedding cache's key
    embed_images(list[bytes]) -> (n, dim) float32, rows L2-normalised
    embed_texts(list[str])    -> (n, dim) float32, rows L2-normalised

EMBEDDERS maps a name to a factory taking the score options (vision_encoder,
text_encoder, ...); unknown options are ignored by embedders that have no use for them.
"""

from emidbench.common.registry import Registry

EMBEDDERS: Registry = Registry("embedder")


def make_embedder(name: str, **options):
    """The embedder registered as `name`, built with the score options."""
    return EMBEDDERS.get(name)(**options)


from emidbench.embedders import offline, paper  # noqa: E402,F401
