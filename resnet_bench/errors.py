"""Exceptions that separate a user's bad input (exit code 2) from a failure (exit code 1)."""

from __future__ import annotations


class BadInputError(ValueError):
    """Input that the user can correct: the message names the field, the value and what is accepted."""
