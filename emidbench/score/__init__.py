"""`emidbench score`: EMI, EMID, the EMID upper bound and judge scores.

    club.py            the CLUB MI estimator (load the published weights, or fit)
    rjsd.py            von Neumann JSD and the bound
    metrics.py         per-scenario numbers from embeddings
    embedders/         paper (CLIP + XLM-R) and offline; registry EMBEDDERS; cache
    judges/            LLaVA-Bench judge protocol; openai, hf, offline; registry JUDGES
    stage.py           run_score: the stage
    from_embeddings.py scoring embeddings extracted elsewhere
"""

from emidbench.score.from_embeddings import score_from_embeddings
from emidbench.score.stage import run_score

__all__ = ["run_score", "score_from_embeddings"]
