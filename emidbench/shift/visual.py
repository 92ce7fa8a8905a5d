"""Visual shifts: the 19 ImageNet-C corruptions of `imagecorruptions`, severities 1-5.

`corrupt_image(image, name, severity, seed)` is `imagecorruptions.corrupt` made
reproducible (see seeding.py).
"""

from __future__ import annotations

import numpy as np

from emidbench.errors import UserError
from emidbench.registry import Registry
from emidbench.shift.seeding import seeded_global_rng

CORRUPTIONS: Registry = Registry("corruption")
SEVERITIES = range(1, 6)
MIN_SIDE = 32  # imagecorruptions refuses smaller images (frost crops from its own textures)

# name -> what it does, for `emidbench list`
_NAMES = {
    "gaussian_noise": "additive Gaussian noise", "shot_noise": "Poisson (shot) noise",
    "impulse_noise": "salt-and-pepper noise", "defocus_blur": "disc-kernel defocus blur",
    "glass_blur": "glass-like local pixel shuffling", "motion_blur": "motion blur",
    "zoom_blur": "zoom blur", "snow": "snow overlay", "frost": "frost texture overlay",
    "fog": "fog (plasma fractal)", "brightness": "brightness increase", "contrast": "contrast decrease",
    "elastic_transform": "elastic deformation", "pixelate": "pixelation", "jpeg_compression": "JPEG artefacts",
    "speckle_noise": "multiplicative speckle noise", "gaussian_blur": "Gaussian blur",
    "spatter": "spatter (mud/water drops)", "saturate": "saturation change",
}


class Corruption:
    """One imagecorruptions corruption, as a registry entry."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, image: np.ndarray, severity: int) -> np.ndarray:
        from imagecorruptions import corrupt

        return corrupt(image, corruption_name=self.name, severity=severity)


for _name, _help in _NAMES.items():
    CORRUPTIONS.register(_name, f"imagecorruptions: {_help} (severity 1-5)")(Corruption(_name))


def check_corruption(name: str, severity: int) -> None:
    CORRUPTIONS.get(name)
    if severity not in SEVERITIES:
        raise UserError(f"corruption {name}: severity {severity} out of range 1..5")


def corrupt_image(image, name: str, severity: int, seed: int) -> np.ndarray:
    """The corrupted image as uint8 HxWx3; same inputs and seed, same pixels."""
    check_corruption(name, severity)
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    if min(arr.shape[:2]) < MIN_SIDE:
        raise UserError(f"corruption {name}: image of {arr.shape[1]}x{arr.shape[0]} px is smaller than {MIN_SIDE} px")
    with seeded_global_rng(seed):
        out = CORRUPTIONS.get(name)(arr, severity)
    return np.clip(np.asarray(out), 0, 255).astype(np.uint8)
