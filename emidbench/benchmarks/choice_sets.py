"""Built-in mappings for the public hub copies of Zhang et al.'s datasets (issue 16).

Each says which column is the image, the label and the domain, where the options come
from, and which split to read. What was checked on each dataset card (the search tool's
copy of huggingface.co, December 2026) is in `verified`; the README's table lists the
same. A local copy in the same schema (a `save_to_disk` folder or the repo's parquet
files) gets the mapping with `--known-as <hub id>`; offline, a hub id fails in one line
(hub.prepare) as any other.

Options: `choices=None` takes the dataset's own class names (a ClassLabel feature, in its
order; for a label column of strings, its distinct values sorted). A registered list
puts the options in Zhang et al.'s order and spelling (their data/dataset_info.json);
the dataset's label names are matched to it ignoring case and `_`/`-`/spaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChoiceSet:
    hub_id: str
    name: str  # the ID set's name (scenario names start with it)
    columns: dict  # our field -> the dataset's column (label, domain, image; defaults otherwise)
    licence: str  # as the card states it
    verified: str  # what the card showed
    choices: tuple[str, ...] | None = None  # None: the dataset's class names
    split: str | None = None  # None: train, else test, else validation, else the first
    skip_multi_label: bool = False  # rows with several labels are left out (counted) instead of refused
    domains: tuple[str, ...] = field(default_factory=tuple)  # the domains the card shows, for the README


CHOICE_SETS: dict[str, ChoiceSet] = {s.hub_id: s for s in [
    ChoiceSet(
        "flwrlabs/pacs", "pacs", {"image": "image", "label": "label", "domain": "domain"},
        licence="unknown (card: license: unknown)",
        verified="card: image (Image), domain (string, 4 values), label (ClassLabel, 7 classes); one split, train",
        choices=("dog", "giraffe", "horse", "person", "guitar", "elephant", "house"),
        domains=("art_painting", "cartoon", "photo", "sketch")),
    ChoiceSet(
        "flwrlabs/office-home", "office_home", {"image": "image", "label": "label", "domain": "domain"},
        licence="not shown in the search tool's copy; OfficeHome's own terms: non-commercial research and "
                "educational use",
        verified="card not in the search tool's copy: the schema of flwrlabs/pacs (same publisher, same "
                 "layout) is assumed — check with `emidbench shift --dry-run`; map other columns with --columns",
        choices=("Bottle", "Exit_Sign", "Lamp_Shade", "Postit_Notes", "Spoon", "Bucket", "Fan", "Laptop", "Printer",
                 "Table", "Calculator", "File_Cabinet", "Marker", "Push_Pin", "Telephone", "Calendar", "Flipflops",
                 "Monitor", "Radio", "ToothBrush", "Candles", "Flowers", "Mop", "Refrigerator", "Toys", "Chair",
                 "Folder", "Mouse", "Ruler", "Trash_Can", "Clipboards", "Fork", "Mug", "Scissors", "TV", "Computer",
                 "Glasses", "Notebook", "Screwdriver", "Webcam", "Alarm_Clock", "Couch", "Hammer", "Oven", "Shelf",
                 "Backpack", "Curtains", "Helmet", "Pan", "Sink", "Batteries", "Desk_Lamp", "Kettle", "Paper_Clip",
                 "Sneakers", "Bed", "Drill", "Keyboard", "Pen", "Soda", "Bike", "Eraser", "Knives", "Pencil",
                 "Speaker"),
        domains=("Art", "Clipart", "Product", "Real World")),
    ChoiceSet(
        "wltjr1007/DomainNet", "domainnet", {"image": "image", "label": "label", "domain": "domain"},
        licence="other (card); DomainNet's own terms: fair use for non-commercial research",
        verified="card (main): image (Image), label (ClassLabel, 345 classes, aircraft_carrier ...); splits train "
                 "(409,832) and test (176,743). An earlier revision had domain (string), category (string) and y "
                 "(ClassLabel): with such a copy pass --columns label=y",
        domains=("clipart", "infograph", "painting", "quickdraw", "real", "sketch")),
    ChoiceSet(
        "wltjr1007/Camelyon17-WILDS", "camelyon17", {"image": "image", "label": "label", "domain": "center"},
        licence="other (card); Camelyon17 itself: CC0 1.0",
        verified="card: image (Image, 96x96), label (ClassLabel, 2 classes: ..., tumor), center (ClassLabel, "
                 "e.g. train-center1), image_id, patient, node, x_coord, y_coord, slide; splits train, "
                 "validation, test",
        choices=("normal", "tumor")),
    ChoiceSet(
        "marmal88/skin_cancer", "ham10000", {"image": "image", "label": "dx", "domain": "dx_type",
                                             "question_id": "image_id"},
        licence="none stated on the card (\"I do not own any rights\"); HAM10000 itself: CC BY-NC 4.0",
        verified="card: image (Image), image_id, lesion_id, dx (string), dx_type (string), age, sex, "
                 "localization; splits train (9,577), validation (2,492), test (1,285). dx holds the diagnosis "
                 "names (the options: its distinct values, sorted); dx_type the 4 ways it was confirmed, the "
                 "paper's domains"),
    ChoiceSet(
        "timm/nih-chest-xray-14", "nih_chest", {"image": "image", "label": "labels"},
        licence="nih-chest-xray-14 (card); the NIH's terms: unrestricted use, cite the paper",
        verified="card: multi-label chest X-rays (tags multi-label, medical); the column names were not in the "
                 "search tool's copy — a list-of-ClassLabel column `labels` (as the other hub copies of "
                 "ChestX-ray14 have) is assumed; map others with --columns label=COLUMN",
        skip_multi_label=True),
]}
