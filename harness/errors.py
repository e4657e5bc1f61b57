"""Errors the harness reports to people.

A :class:`HarnessError` carries one line that says what is wrong and what to do; the CLI
and the pytest plugin print that line alone (no traceback) and exit non-zero.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input or environment, worded for the user."""


class UsageError(HarnessError):
    """Bad option values or arguments."""


class NotReadyError(HarnessError):
    """A cluster or node did not reach the awaited state before its deadline."""


class NotSupportedError(HarnessError):
    """The backend (or server) cannot do what was asked; tests should skip, not fail."""
