"""Exceptions that separate a user's bad input (exit code 2) from a failure (exit code 1), and the checks of input."""

from __future__ import annotations

from typing import Any


# The command line's exit codes: done, a failure, bad input (one line naming the field), interrupted (128 + SIGINT).
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInputError(ValueError):
    """Input that the user can correct: the message names the field, the value and what is accepted."""


class DiskFullError(RuntimeError):
    """No space left where a command writes (a training state, a checkpoint, an SQLite storage): exit 1, with one
    line naming the place; what was stored before stays, and the trial in flight is retried by a later command."""


def is_positive_int(value: Any) -> bool:
    """An integer >= 1 (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_number(value: Any) -> bool:
    """An int or a float (a bool is not one); NaN and the infinities are numbers."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, *, error: type[BadInputError] = BadInputError) -> int:
    """`value` when it is an integer >= 1 (never a bool); otherwise `error` naming the field and the value."""
    if not is_positive_int(value):
        raise error(f"{name}={value!r} is not accepted; it must be an integer >= 1")
    return value
