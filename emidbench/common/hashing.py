"""Content hashes, and reproducible randomness for libraries that use global random state.

imagecorruptions, nlpaug and EDA draw from numpy's and Python's global generators.
`seeded_global_rng(seed)` seeds both for one call and restores the caller's state;
`derive_seed(...)` turns the parts that identify one piece of work (run seed, scenario,
question id, image hash, ...) into a seed with a stable hash, so a result never depends
on the order or the process in which work is done.
"""

from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager

import numpy as np


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(obj) -> str:
    """A short stable hash of JSON-able settings (what a stage was run with)."""
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def derive_seed(*parts) -> int:
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 2**32


@contextmanager
def seeded_global_rng(seed: int):
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
