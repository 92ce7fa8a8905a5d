"""Choice tasks: the question a model is asked, what a scenario line carries, and how an
answer is read back as one of the options.

Shared vocabulary of the stages for classification and multiple-choice samples
(issue 16). A choice sample has `Sample.choices` (the option texts, in order) and
`Sample.reference` equal to the correct one. Shift writes, per scenario line:

    "text":     the question as the model sees it (the stem after any text shift, rendered
                through the suite's template, listing the options)
    "choices":  the option texts
    "reference": the correct option's text
    "domain":   the sample's domain, where it has one
    "examples": in-context examples, in order, for ICL scenarios only:
                [{"image": <stored image name>, "text": <rendered question>,
                  "answer": <the filled-in answer, e.g. "Answer Choice: [dog]">}, ...]

The default template is Zhang et al. (2024)'s ("On the OOD Generalization of MLLMs",
code: jiansheng-li/MLLMs, data/generate_unified_input_data.py): the class list as a
Python list repr and a fixed answer line between format-template markers. Their prompt is
an indented triple-quoted Python string, so each of its lines after the first starts
with 8 spaces of source indentation; the template keeps their words and line breaks and
drops that indentation (an artefact of their source layout, not wording).

Reading an answer (`parse_answer`), in this order, the first that applies wins:
  1. answer_line  Zhang et al.'s regex `Answer Choice:\\s*[?'?"?<option>` (case-insensitive),
                  tried over the options in order. One change: the option must end at a
                  word boundary, so "Answer Choice: [Pencil]" is not read as "Pen" (their
                  regex, tried in class order, would).
  2. exact        the whole answer, or the text of its answer line, is an option's name
                  (case, surrounding quotes/brackets/punctuation, `_`/`-` vs spaces ignored).
  3. letter       the whole answer is an option letter: "B", "(b)", "B.", "Answer: B",
                  "B. elephant" (a trailing name must be that option's; "B. dog" when
                  B is not dog is unparsed).
  4. fuzzy        conservative: exactly one option is named in the answer as a whole
                  word or phrase (a plural "s"/"es" allowed; a longer option that contains
                  a shorter one wins over it), or a short answer (at most 4 words) is a
                  close spelling of exactly one option (difflib ratio >= 0.85). Skipped
                  when the answer negates or refuses ("not", "no", "cannot", "sorry", ...):
                  "it is not a dog" must not be read as "dog".
Anything else is unparsed: counted (`n_unparsed`) and scored wrong, never dropped.
"""

from __future__ import annotations

import difflib
import re
import string
from dataclasses import dataclass
from typing import Sequence

from emidbench.common.errors import UserError

# Zhang et al.'s zero-shot wording. {question} is the stem, {choices} the Python list repr
# of the option texts.
DEFAULT_TEMPLATE = (
    "Given the image, answer the following question using the specified format.\n"
    "Question: {question} Choice list: {choices}.\n"
    "Please choose a choice from the list and respond with the following format:\n"
    "---BEGIN FORMAT TEMPLATE---\n"
    "Answer Choice: [Your Answer Choice Here]\n"
    "---END FORMAT TEMPLATE---\n"
    "Do not deviate from the above format. Repeat the format template for the answer."
)
# With in-context examples their query ends with an extra instruction (on its own line:
# their prompt string ends with a line break).
ICL_SUFFIX = "\nDo not response with I'm sorry. Just pick a choice."
DEFAULT_STEM = "What is in this image?"
ANSWER_LINE = "Answer Choice: [{answer}]"
TEMPLATE_FIELDS = ("question", "choices")


# With in-context examples, their code (evaluation/eval_gpt_ICL.py) also points the
# default wording at the image above the question (the examples' images come first).
ICL_WORDING = (("Given the image", "Given the image above"), ("in this image", "in the image above"))


def render_question(stem: str, choices: Sequence[str], template: str | None = None,
                    with_examples: bool = False) -> str:
    """The question a model sees for a choice sample. with_examples: the query after
    in-context examples (Zhang et al.'s ICL wording: "the image above" in the default
    template, and their closing instruction)."""
    text = (template or DEFAULT_TEMPLATE).format(question=stem, choices=repr(list(choices)))
    if not with_examples:
        return text
    if template is None or template == DEFAULT_TEMPLATE:
        for old, new in ICL_WORDING:
            text = text.replace(old, new)
    return text + ICL_SUFFIX


def answer_line(answer: str) -> str:
    """An in-context example's filled-in answer."""
    return ANSWER_LINE.format(answer=answer)


def check_template(template, where: str = "choice_template") -> str:
    """A question template: a string using {choices} (the options must be shown) and
    optionally {question}; no other placeholder. -> the template, or one line."""
    if not isinstance(template, str) or not template.strip():
        raise UserError(f"{where}: must be a non-empty string with {{choices}} (and {{question}}), not {template!r}")
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:  # a lone brace
        raise UserError(f"{where}: not a valid template ({e}; write a literal brace as {{{{ or }}}})") from None
    bad = [n for n in names if n not in TEMPLATE_FIELDS]
    if bad:
        raise UserError(f"{where}: unknown placeholder {{{bad[0]}}} (use {{question}} and {{choices}})")
    if "choices" not in names:
        raise UserError(f"{where}: the template must show the options: it has no {{choices}}")
    return template


# --------------------------------------------------------------------------- parsing

@dataclass(frozen=True)
class Parsed:
    index: int | None  # the option the answer picks; None: unparsed
    how: str  # answer_line | exact | letter | fuzzy | unparsed


UNPARSED = Parsed(None, "unparsed")
HOW = ("answer_line", "exact", "letter", "fuzzy", "unparsed")
_ANSWER_LINE = re.compile(r"Answer Choice:\s*(.*)", re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(?:(?:the\s+)?(?:final\s+)?answer(?:\s+choice)?|choice|option)\s*(?:is\s*)?[:：]?\s*",
                     re.IGNORECASE)
# "(b)", "[B]:" with or without a trailing name; a bare capital alone or with punctuation
# ("B", "B.", "B) elephant"), never "A cat" (an article, not option A)
_LETTER = re.compile(r"^(?:[\(\[]([A-Za-z])[\)\]][.:]?\s*(.*)|([A-Z])(?:[.):]\s*(.*))?)$", re.DOTALL)
_NEGATION = re.compile(r"\b(?:not|no|none|cannot|can't|neither|nor|unsure|unable|sorry|unclear|impossible)\b"
                       r"|n't\b", re.IGNORECASE)
_STRIP = " \t\r\n'\"`[](){}<>.,;:!?*"
CONFLICT = -1
CLOSE_RATIO = 0.85
CLOSE_MAX_WORDS = 4


def normalize(text: str) -> str:
    """Case, underscores/hyphens, spacing and surrounding punctuation do not matter."""
    text = re.sub(r"[_\-]+", " ", str(text).strip().strip(_STRIP)).lower()
    return re.sub(r"\s+", " ", text).strip()


def parse_answer(answer: str, choices: Sequence[str]) -> Parsed:
    """Which option `answer` picks (see the module docstring for the order of the rules)."""
    if not isinstance(answer, str) or not choices:
        return UNPARSED
    for i, c in enumerate(choices):  # 1. Zhang et al.'s answer line
        if re.search(r"Answer Choice:\s*\[?'?\"?" + re.escape(c) + r"(?!\w)", answer, re.IGNORECASE):
            return Parsed(i, "answer_line")
    names = [normalize(c) for c in choices]
    line = _ANSWER_LINE.search(answer)
    candidates = [_PREFIX.sub("", answer)] + ([line.group(1).split("\n")[0]] if line else [])
    for text in candidates:  # 2. exactly an option's name
        n = normalize(text)
        if n in names:
            return Parsed(names.index(n), "exact")
    letter = _letter(_PREFIX.sub("", answer.strip()), names)  # 3. an option letter
    if letter == CONFLICT:
        return UNPARSED
    if letter is not None:
        return Parsed(letter, "letter")
    fuzzy = _fuzzy(answer, names)  # 4. conservative fuzzy match
    return Parsed(fuzzy, "fuzzy") if fuzzy is not None else UNPARSED


def _letter(text: str, names: list[str]) -> int | None:
    m = _LETTER.match(text.strip())
    if not m:
        return None
    i = ord((m.group(1) or m.group(3)).upper()) - ord("A")
    if not 0 <= i < len(names):
        return None
    rest = normalize(m.group(2) or m.group(4) or "")
    if rest and rest != names[i] and rest in names:
        return CONFLICT  # "B. dog" when B is not dog: which one was meant?
    return i if not rest or rest == names[i] else None


def _fuzzy(answer: str, names: list[str]) -> int | None:
    if _NEGATION.search(answer):
        return None
    low = normalize(answer)
    spans: dict[int, list[tuple[int, int]]] = {}
    for i, n in enumerate(names):
        if not n:
            continue
        words = r"[\s_\-]+".join(map(re.escape, n.split(" ")))
        found = [(m.start(), m.end()) for m in re.finditer(r"(?<!\w)" + words + r"(?:s|es)?(?!\w)", low)]
        if found:
            spans[i] = found
    # an option named only inside a longer named option ("dog" in "hot dog") is not named
    named = {i for i, sp in spans.items()
             if any(not any(j != i and len(names[j]) > len(names[i]) and a <= s and e <= b
                            for j, other in spans.items() for a, b in other)
                    for s, e in sp)}
    distinct = {names[i] for i in named}
    if len(distinct) == 1:
        return min(named)
    if named or len(low.split()) > CLOSE_MAX_WORDS:
        return None
    close = [i for i, n in enumerate(names) if difflib.SequenceMatcher(None, low, n).ratio() >= CLOSE_RATIO]
    return close[0] if len(close) == 1 else None
