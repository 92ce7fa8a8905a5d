"""Encoded images: decoding with one clear line for a bad one, the format of encoded
bytes, and PNG encoding with Pillow."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from emidbench.common.errors import UserError


def decode_image(data: bytes, where: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise UserError(f"{where}: image does not decode (not a known image format)") from None
    except Image.DecompressionBombError as e:  # > 2x Image.MAX_IMAGE_PIXELS (~179 Mpx)
        raise UserError(f"{where}: image refused as too large to decode safely ({e}); resize it") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{where}: image does not decode ({e})") from None
    return img.convert("RGB")


def image_format(data: bytes) -> str:
    """File extension for encoded image bytes ('png', 'jpg', ...)."""
    fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
    return {"jpeg": "jpg"}.get(fmt, fmt)


def pil_png(img: Image.Image) -> bytes:
    """PNG at Pillow's default settings (for generated images; the shift stage's many
    corrupted images use its faster lossless encoder, shift.visual.fast_png)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
