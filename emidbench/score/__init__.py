"""`emidbench score`: EMI, EMID, the EMID upper bound and LLM-judge scores.

    stage.py           run_score: RUN/shifts + RUN/responses/<model> -> RUN/scores/<model>/
    embedders/         paper (CLIP + XLM-R, as published) and offline (a proxy); registry
                       EMBEDDERS; the content-addressed embedding cache
    club.py            the CLUB MI estimator (load the published weights, or fit one)
    estimator.py       which estimator scores a model: the run's shared one (default),
                       one per model, a checkpoint; ensembles over seeds
    rjsd.py            von Neumann JSD and the bound
    metrics.py         per-scenario numbers from embeddings
    judges/            LLaVA-Bench's judge protocol; openai, hf, offline; registry JUDGES
    bootstrap.py       confidence intervals over items
    from_embeddings.py scoring embeddings extracted elsewhere
"""

from emidbench.embedders import EMBEDDERS
from emidbench.score.from_embeddings import score_from_embeddings
from emidbench.score.judges import JUDGES
from emidbench.score.stage import fit_shared_estimator, run_score

__all__ = ["run_score", "fit_shared_estimator", "score_from_embeddings", "EMBEDDERS", "JUDGES"]
