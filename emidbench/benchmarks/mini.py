"""`mini`: a procedurally generated benchmark in LLaVA-Bench's shape, for the offline demo.

Each image holds one to three coloured shapes (circle, square, triangle; each shape at
most once) in the cells of a 2x2 grid. The ID domain (`mini`) draws them on a plain
light background; the natural second domain (`mini_wild`) draws the same kind of scene
over photographs shipped with scikit-image, blended in at varying strength, so some wild
images are close to the ID domain and some far from it. Every question has a
full-sentence reference answer derived from the scene description alone (`Scene`), and
templated translations in the paper's seven languages.

Everything is generated from a seed: no image file is shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.common.images import pil_png

IMAGE_SIZE = 64
COLORS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
NUMBERS = {1: "one", 2: "two", 3: "three"}
LANGUAGES = ("English", "German", "Chinese", "Korean", "Greek", "Arabic", "Hindi")
# ID images, wild images, wild questions: the paper's size (LLaVA-Bench: 90 + 60 questions), 10x and
# 100x (scripts/bench_scale.py)
SIZES = {"default": (30, 24, 60), "large": (300, 240, 600), "xlarge": (3000, 2400, 6000)}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    position: str


@dataclass(frozen=True)
class Scene:
    objects: tuple  # Obj, in reading order of POSITIONS
    domain: str  # "mini" or "mini_wild"
    photo: str | None = None
    blend: float = 0.0  # share of the photo in the wild background

    def describe(self) -> str:
        return " and ".join([", ".join(self._phrases()[:-1]), self._phrases()[-1]]) if len(self.objects) > 1 \
            else self._phrases()[0]

    def _phrases(self) -> list[str]:
        return [f"a {o.color} {o.shape}" for o in self.objects]

    def context(self) -> str:
        objs = "; ".join(f"{o.color} {o.shape} in the {o.position}" for o in self.objects)
        bg = "a plain white background" if self.domain == "mini" else f"a photograph ({self.photo}) background"
        return f"{len(self.objects)} shape(s) on {bg}: {objs}."


# ----------------------------------------------------------------- questions and answers

QUESTION_KINDS = ("color", "count", "detail", "position")
CATEGORY = {"color": "conv", "count": "conv", "detail": "detail", "position": "complex"}


def question(kind: str, scene: Scene, arg: str | None) -> tuple[str, str]:
    """(English question, reference answer) from the scene alone."""
    if kind == "color":
        obj = next(o for o in scene.objects if o.shape == arg)
        return f"What color is the {arg}?", f"The {arg} is {obj.color}."
    if kind == "count":
        n = len(scene.objects)
        if n == 1:
            return "How many shapes are in the image?", "There is one shape in the image."
        return "How many shapes are in the image?", f"There are {NUMBERS[n]} shapes in the image."
    if kind == "detail":
        bg = "on a white background" if scene.domain == "mini" else "over a photograph"
        return "Describe the image in detail.", f"The image shows {scene.describe()} {bg}."
    if kind == "position":
        obj = next(o for o in scene.objects if o.position == arg)
        return f"What is in the {arg} of the image?", f"The {arg} of the image has a {obj.color} {obj.shape}."
    raise ValueError(kind)


TRANSLATIONS = {
    "German": {
        "color": "Welche Farbe hat {shape}?", "count": "Wie viele Formen sind im Bild?",
        "detail": "Beschreibe das Bild ausführlich.", "position": "Was befindet sich {position} im Bild?",
        "shape": {"circle": "der Kreis", "square": "das Quadrat", "triangle": "das Dreieck"},
        "pos": {"top left": "oben links", "top right": "oben rechts", "bottom left": "unten links",
                "bottom right": "unten rechts"},
    },
    "Chinese": {
        "color": "{shape}是什么颜色？", "count": "图片中有多少个形状？",
        "detail": "请详细描述这张图片。", "position": "图片的{position}有什么？",
        "shape": {"circle": "圆形", "square": "正方形", "triangle": "三角形"},
        "pos": {"top left": "左上角", "top right": "右上角", "bottom left": "左下角", "bottom right": "右下角"},
    },
    "Korean": {
        "color": "{shape}은 무슨 색입니까?", "count": "이미지에 도형이 몇 개 있습니까?",
        "detail": "이미지를 자세히 설명해 주세요.", "position": "이미지의 {position}에는 무엇이 있습니까?",
        "shape": {"circle": "원", "square": "정사각형", "triangle": "삼각형"},
        "pos": {"top left": "왼쪽 위", "top right": "오른쪽 위", "bottom left": "왼쪽 아래",
                "bottom right": "오른쪽 아래"},
    },
    "Greek": {
        "color": "Τι χρώμα έχει {shape};", "count": "Πόσα σχήματα υπάρχουν στην εικόνα;",
        "detail": "Περίγραψε την εικόνα λεπτομερώς.", "position": "Τι υπάρχει {position} στην εικόνα;",
        "shape": {"circle": "ο κύκλος", "square": "το τετράγωνο", "triangle": "το τρίγωνο"},
        "pos": {"top left": "πάνω αριστερά", "top right": "πάνω δεξιά", "bottom left": "κάτω αριστερά",
                "bottom right": "κάτω δεξιά"},
    },
    "Arabic": {
        "color": "ما لون {shape}؟", "count": "كم عدد الأشكال في الصورة؟",
        "detail": "صف الصورة بالتفصيل.", "position": "ماذا يوجد في {position} من الصورة؟",
        "shape": {"circle": "الدائرة", "square": "المربع", "triangle": "المثلث"},
        "pos": {"top left": "أعلى اليسار", "top right": "أعلى اليمين", "bottom left": "أسفل اليسار",
                "bottom right": "أسفل اليمين"},
    },
    "Hindi": {
        "color": "{shape} किस रंग का है?", "count": "चित्र में कितनी आकृतियाँ हैं?",
        "detail": "चित्र का विस्तार से वर्णन करें।", "position": "चित्र के {position} में क्या है?",
        "shape": {"circle": "वृत्त", "square": "वर्ग", "triangle": "त्रिभुज"},
        "pos": {"top left": "ऊपरी बाएँ कोने", "top right": "ऊपरी दाएँ कोने", "bottom left": "निचले बाएँ कोने",
                "bottom right": "निचले दाएँ कोने"},
    },
}


def translate(kind: str, arg: str | None, language: str) -> str:
    t = TRANSLATIONS[language]
    return t[kind].format(shape=t["shape"].get(arg, ""), position=t["pos"].get(arg, ""))


# ----------------------------------------------------------------- scenes and pixels

def random_scene(rng: np.random.Generator, domain: str = "mini") -> Scene:
    n = int(rng.integers(1, 4))
    shapes = rng.permutation(SHAPES)[:n]
    cells = sorted(rng.permutation(len(POSITIONS))[:n])
    objects = tuple(Obj(str(s), str(rng.choice(list(COLORS))), POSITIONS[c]) for s, c in zip(shapes, cells))
    if domain == "mini":
        return Scene(objects, domain)
    return Scene(objects, domain, photo=str(rng.choice(PHOTOS)), blend=float(rng.uniform(0.3, 1.0)))


_PHOTO_CACHE: dict = {}


def _photo(name: str) -> np.ndarray:
    if name not in _PHOTO_CACHE:
        import skimage.data

        _PHOTO_CACHE[name] = np.asarray(getattr(skimage.data, name)())[..., :3]
    return _PHOTO_CACHE[name]


def render(scene: Scene, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    if scene.domain == "mini":
        shade = int(rng.integers(235, 256))
        img = Image.new("RGB", (size, size), (shade, shade, shade))
    else:
        photo = _photo(scene.photo)
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.4, 0.9))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
        white = np.full((size, size, 3), 245.0)
        img = Image.fromarray((scene.blend * np.asarray(crop, float) + (1 - scene.blend) * white).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    half = size // 2
    for obj in scene.objects:
        col, row = POSITIONS.index(obj.position) % 2, POSITIONS.index(obj.position) // 2
        r = int(half * rng.uniform(0.28, 0.4))
        cx = col * half + half // 2 + int(rng.integers(-2, 3))
        cy = row * half + half // 2 + int(rng.integers(-2, 3))
        fill = COLORS[obj.color]
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif obj.shape == "square":
            draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def questions_for(scene: Scene, rng: np.random.Generator, kinds: tuple) -> list[tuple[str, str | None]]:
    """(kind, argument) per question; each argument is one the scene can answer."""
    out = []
    for kind in kinds:
        if kind == "conv":
            kind = "color" if rng.random() < 0.6 else "count"
        elif kind == "complex":
            kind = "position"
        arg = None
        if kind == "color":
            arg = str(rng.choice([o.shape for o in scene.objects]))
        elif kind == "position":
            arg = str(rng.choice([o.position for o in scene.objects]))
        out.append((kind, arg))
    return out


# ----------------------------------------------------------------- the benchmark

def _samples(rng: np.random.Generator, domain: str, n_images: int, n_questions: int, first_qid: int,
             scenes: dict) -> list[Sample]:
    samples = []
    per_image = [3] * n_images
    for i in range(3 * n_images - n_questions):  # fewer questions than 3 per image: drop complex ones
        per_image[n_images - 1 - i % n_images] -= 1
    qid = first_qid
    for i in range(n_images):
        scene = random_scene(rng, domain)
        png = pil_png(render(scene, rng))
        name = f"{domain}_{i:04d}.png"
        kinds = ("conv", "detail", "complex")[: per_image[i]]
        for kind, arg in questions_for(scene, rng, kinds):
            text, ref = question(kind, scene, arg)
            samples.append(Sample(
                question_id=qid, image=png, image_name=name, text=text, reference=ref,
                category=CATEGORY[kind], context=scene.context(),
                translations={lang: translate(kind, arg, lang) for lang in LANGUAGES[1:]},
            ))
            scenes[qid] = (scene, kind, arg)
            qid += 1
    return samples


def load_mini(seed: int = 0, size: str = "default") -> Benchmark:
    """`mini` (ID, plain backgrounds) with the second domain `mini_wild` (photographs)."""
    if size not in SIZES:
        from emidbench.common.errors import UserError

        raise UserError(f"mini: unknown size {size!r} (choose from {', '.join(SIZES)})")
    n_id, n_wild, q_wild = SIZES[size]
    rng = np.random.default_rng([seed, 1])  # stream 1: the benchmark; training uses others
    scenes: dict = {}
    samples = _samples(rng, "mini", n_id, 3 * n_id, 0, scenes)
    wild = _samples(rng, "mini_wild", n_wild, q_wild, 100000, scenes)
    bench = Benchmark(name="mini", samples=samples, domains={"mini_wild": wild}, source=f"mini(seed={seed}, size={size})")
    bench.scenes = scenes  # question_id -> (Scene, kind, argument), for checking answers
    return bench


def training_examples(rng: np.random.Generator, n: int) -> list[tuple[Image.Image, str, str]]:
    """(image, question, answer) triples of the ID domain for training (English, clean)."""
    out = []
    for _ in range(n):
        scene = random_scene(rng, "mini")
        img = render(scene, rng)
        kind = str(rng.choice(["conv", "detail", "complex"]))
        (kind, arg), = questions_for(scene, rng, (kind,))
        q, a = question(kind, scene, arg)
        out.append((img, q, a))
    return out
