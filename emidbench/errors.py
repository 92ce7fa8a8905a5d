"""The one error type users see.

A UserError is bad input (a file, a line, a sample, an option): the CLI prints its
message as one line on stderr and exits with code 2. Anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    exit_code = 2

    def __init__(self, message: str):
        # One line, always: a multi-line message would break "one clear line".
        super().__init__(" ".join(str(message).split()))


class NotImplementedYet(UserError):
    def __init__(self, what: str):
        super().__init__(f"{what} is not implemented yet")
