"""Models bundled with the package (for the offline demo)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
# name -> folder: the demo model, and the toy CLIP / XLM-R pair the offline demo embeds with
BUNDLED = {"tiny-llava": "tiny-llava", "mini-clip": "mini-clip", "mini-xlmr": "mini-xlmr"}


def bundled_model_path(name: str) -> Path | None:
    """The folder of a bundled model (`tiny-llava`, `mini-clip`, `mini-xlmr`), or None if `name` is not one."""
    folder = BUNDLED.get(name)
    if folder is None:
        return None
    path = ASSETS / folder
    return path if (path / "config.json").is_file() else None


def clip_image_processor(image_size: int | None = None, **kwargs):
    """A CLIP image processor, square at `image_size` (None: CLIP's own 224-px defaults).
    transformers 5 names its PIL backend CLIPImageProcessorPil (no torchvision needed, and
    the same pixels on every install); older releases only have CLIPImageProcessor."""
    try:
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor
    if image_size is not None:
        kwargs = {"size": {"shortest_edge": image_size}, "crop_size": {"height": image_size, "width": image_size},
                  **kwargs}
    return CLIPImageProcessor(**kwargs)
