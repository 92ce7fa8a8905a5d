"""Choice tasks: the question a model is asked, and what a scenario line carries.

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
code: jiansheng-li/MLLMs): the class list as a Python list repr and a fixed answer line.
"""

from __future__ import annotations

from typing import Sequence

# Zhang et al.'s zero-shot wording. {question} is the stem, {choices} the Python list repr
# of the option texts.
DEFAULT_TEMPLATE = (
    "Given the image, answer the following question using the specified format. "
    "Question: {question} Choice list: {choices}. "
    "Please choose a choice from the list and respond with the following format: "
    "Answer Choice: [Your Answer Choice Here]. Do not deviate from this format."
)
# With in-context examples their query ends with an extra instruction.
ICL_SUFFIX = " Do not response with I'm sorry. Just pick a choice."
DEFAULT_STEM = "What is in this image?"
ANSWER_LINE = "Answer Choice: [{answer}]"


def render_question(stem: str, choices: Sequence[str], template: str = DEFAULT_TEMPLATE,
                    with_examples: bool = False) -> str:
    """The question a model sees for a choice sample."""
    text = template.format(question=stem, choices=repr(list(choices)))
    return text + ICL_SUFFIX if with_examples else text


def answer_line(answer: str) -> str:
    """An in-context example's filled-in answer."""
    return ANSWER_LINE.format(answer=answer)
