"""User-facing errors: one small hierarchy, so every entry point can print a user's mistake as one line.

Place in the flow: below every stage (any module may raise these; this module imports nothing).
An entry point catches `MixtrainError` and prints its message (what was wrong, which key, file or
domain, and the fix) without a traceback; any other exception is a bug and keeps its traceback.
Subclassing ValueError keeps older `except ValueError` callers and tests working.
"""

from __future__ import annotations


class MixtrainError(ValueError):
    """A user mistake or a refused action; the message names the key/file/domain and the fix."""


class ConfigError(MixtrainError):
    """A config key or value the command does not accept."""


class DataError(MixtrainError):
    """Prepared or raw data that is missing, damaged, or not the data a run was started on."""


class RunDirError(MixtrainError):
    """A run directory that cannot be used: held by another writer, unwritable, or inconsistent."""
