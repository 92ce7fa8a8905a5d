"""Visual shifts: the 19 ImageNet-C corruptions of `imagecorruptions`, severities 1-5,
and the fast lossless PNG encoder their results are stored with.

`corrupt_image(image, name, severity, seed)` is `imagecorruptions.corrupt` made
reproducible: the library draws from numpy's global generator (and glass_blur /
impulse_noise from a fresh unseeded generator unless given a `seed`), so each call runs
inside a guard that seeds the global state from `seed`, passes a seed drawn from it to
the corruptions that take one, and restores the caller's state afterwards.

Images must be at least MIN_SIDE px on each side (imagecorruptions refuses smaller ones;
frost crops its texture to the image). We refuse, we do not upscale: an upscaled image
would no longer be the sample the ID set holds. The stage checks every image before any
work starts.
"""

from __future__ import annotations

import inspect
import zlib

import numpy as np

from emidbench.common.errors import UserError
from emidbench.common.hashing import seeded_global_rng
from emidbench.common.registry import Registry

CORRUPTIONS: Registry = Registry("corruption")
SEVERITIES = range(1, 6)
MIN_SIDE = 32  # imagecorruptions.corrupt refuses images under 32 px on either side

# imagecorruptions.get_corruption_names("all"), in its order, with what each does. Listed
# here (a test checks the two agree) so `emidbench list` need not import cv2/numba/skimage.
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
    """One imagecorruptions corruption, as a registry entry. Call it inside a seeded guard."""

    def __init__(self, name: str):
        self.name = name
        self._takes_seed: bool | None = None

    def __call__(self, image: np.ndarray, severity: int) -> np.ndarray:
        from imagecorruptions import corrupt, corruption_dict

        if self._takes_seed is None:
            self._takes_seed = "seed" in inspect.signature(corruption_dict[self.name]).parameters
        # glass_blur and impulse_noise ignore the global state unless given a seed: draw it
        # from the (seeded) global generator so they are as reproducible as the others.
        kwargs = {"seed": int(np.random.randint(0, 2**31 - 1))} if self._takes_seed else {}
        return corrupt(image, corruption_name=self.name, severity=severity, **kwargs)


for _name, _help in _NAMES.items():
    CORRUPTIONS.register(_name, f"imagecorruptions: {_help} (severity 1-5)")(Corruption(_name))


def check_corruption(name: str, severity) -> None:
    CORRUPTIONS.get(name)
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise UserError(f"corruption {name}: severity {severity!r} out of range 1..5")


def as_rgb_array(image) -> np.ndarray:
    """PIL image or array (HxW, HxWx1, HxWx3, HxWx4) -> uint8 HxWx3."""
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW or HxWx{{1,3,4}} image array, got shape {arr.shape}")
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr if arr.shape[2] == 3 else arr[..., :3])


def corrupt_image(image, name: str, severity: int, seed: int) -> np.ndarray:
    """The corrupted image as uint8 HxWx3; same pixels and seed in, same pixels out.
    The caller's numpy/Python global random state is left as it was."""
    check_corruption(name, severity)
    arr = as_rgb_array(image)
    if min(arr.shape[:2]) < MIN_SIDE:
        raise UserError(f"corruption {name}: image of {arr.shape[1]}x{arr.shape[0]} px is smaller than "
                        f"{MIN_SIDE} px on a side")
    with seeded_global_rng(seed):
        out = np.asarray(CORRUPTIONS.get(name)(arr, severity))
    return out if out.dtype == np.uint8 else np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- PNG

PNG_ENCODER = "png: Up filter, zlib Huffman-only"  # recorded in the manifest


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(data, zlib.crc32(kind)).to_bytes(4, "big")


def fast_png(arr: np.ndarray) -> bytes:
    """Lossless 8-bit RGB PNG, about 3x faster than Pillow's compress_level=1 at the same
    size on photographs (and 9x faster than its default level, 10% larger).

    Pillow spends its time in zlib's LZ77 match search. Fast PNG encoders skip it: every
    row gets the Up filter (difference to the row above, which turns smooth photographic
    content into small values) and the stream is Huffman-coded only. Written from the
    PNG specification (RFC 2083); any PNG reader decodes it to the same pixels.
    """
    arr = as_rgb_array(arr)
    h, w, _ = arr.shape
    rows = arr.reshape(h, w * 3)
    raw = np.empty((h, w * 3 + 1), dtype=np.uint8)
    raw[:, 0] = 2  # filter type Up
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 arithmetic wraps mod 256, as PNG wants
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    idat = packer.compress(raw.data) + packer.flush()
    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
