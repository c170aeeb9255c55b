"""One exception hierarchy for everything the engine reports to a user."""

from __future__ import annotations


class SelfHealError(Exception):
    """A user-facing error: printed as one line, never with a traceback."""

    exit_code = 2


class ConfigError(SelfHealError):
    """A bad value in `[tool.selfheal]`, an option or an environment variable."""


class SequenceError(SelfHealError):
    """A sequence file that cannot be loaded or does not validate."""


class StoreError(SelfHealError):
    """The SQLite store cannot be opened, read or written."""


class StoreVersionError(StoreError):
    """The store file was written by a newer schema version than this one knows."""


class TelemetryError(SelfHealError):
    """A telemetry source that cannot be read at all (not a malformed line: those are skipped)."""


class GitError(SelfHealError):
    """A git command failed or the directory is not a git repository."""


class PatchError(SelfHealError):
    """A patch that is malformed or refused by the safety policy."""


class BeatError(SelfHealError):
    """A beat failed and its error policy says to abort the sequence."""

    def __init__(self, sequence: str, beat: int, handler: str, cause: BaseException) -> None:
        super().__init__(f"{sequence} beat {beat} ({handler}) failed: {cause}")
        self.sequence = sequence
        self.beat = beat
        self.handler = handler
        self.cause = cause
