"""User-facing errors: each carries one line that names the file or row and says what to do.

The CLI prints ``error: <message>`` and exits with code 2 for any :class:`EchoScriptError`; notebooks show the
same line. Internal bugs stay ordinary exceptions with a traceback.
"""

from __future__ import annotations


class EchoScriptError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class ConfigError(EchoScriptError):
    """A parameter file or override is missing, unknown or ill-typed."""


class InputError(EchoScriptError):
    """An input file or folder is missing, unreadable or malformed."""


class OutputError(EchoScriptError):
    """An output folder cannot be created or written."""


class DependencyError(EchoScriptError):
    """An optional package, model file or checkpoint is missing; the message says what to install."""


class StageError(EchoScriptError):
    """A workbook stage failed; the message names the stage and the executed notebook to open."""


class ModelNotFoundError(DependencyError, ConfigError, InputError):
    """A model or weights reference (hub id, folder, checkpoint path or URL) could not be resolved or read.

    The one error of the model resolver for every family; it is also each of the older, narrower types
    (a missing setting, a missing file, an unreachable hub), so callers that catch those keep working.
    """
