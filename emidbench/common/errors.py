"""The one error type users see.

A UserError is bad input (a file, a line, a sample, an option): the CLI prints its
message as one line on stderr and exits with code 2. Anything else is a bug and keeps
its traceback.
"""

import difflib


def closest(name, known) -> str | None:
    """The one of `known` that `name` is a near miss of (a typo), or None. Exact names are
    no typo."""
    known = sorted(set(map(str, known)))
    if str(name) in known:
        return None
    near = difflib.get_close_matches(str(name), known, n=1)
    return near[0] if near else None


def did_you_mean(name, known, prefix: str = "") -> str:
    """" (did you mean 'x'?)" for a near miss of one of `known` (x shown with `prefix`), or ""."""
    near = closest(name, known)
    return f" (did you mean '{prefix}{near}'?)" if near else ""


class UserError(Exception):
    exit_code = 2

    def __init__(self, message: str):
        # One line, always: a multi-line message would break "one clear line".
        super().__init__(" ".join(str(message).split()))


def first_line(e: BaseException, limit: int = 300) -> str:
    """A library's exception as one short line (its first line, or its type's name), for
    a UserError or an item's recorded failure."""
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:limit]


def exception_chain(e: BaseException):
    """The exception, then what caused it (__cause__, else __context__), each once."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__
