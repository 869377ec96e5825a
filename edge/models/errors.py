"""The two ways a fetch fails, each with the exit code ``slr-model`` documents.

The line to show travels in the exception, so every layer (download, cache, export) reports in
the same words and the command never has to guess an exit code from an exception type it does
not know.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2


class ModelStoreError(Exception):
    """A one-line problem; ``exit_code`` is what ``slr-model`` exits with."""

    exit_code = EXIT_FAILURE


class FetchFailed(ModelStoreError):
    """The transfer failed (network, timeout, server misbehaviour, full disk): exit 1, try again."""

    exit_code = EXIT_FAILURE


class BadSource(ModelStoreError):
    """What was asked for or what arrived is wrong (option, checksum, not a model): exit 2."""

    exit_code = EXIT_USAGE
