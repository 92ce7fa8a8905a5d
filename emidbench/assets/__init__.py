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
