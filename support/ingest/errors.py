"""Why an uploaded document was refused, in words the uploading admin can act on."""

from __future__ import annotations

from enum import StrEnum


class IngestErrorCode(StrEnum):
    EMPTY = "empty"
    UNKNOWN_TYPE = "unknown_type"
    TYPE_MISMATCH = "type_mismatch"
    CORRUPT = "corrupt"
    ENCRYPTED = "encrypted"
    NO_TEXT = "no_text"
    ZIP_BOMB = "zip_bomb"
    TOO_LARGE = "too_large"
    BAD_NAME = "bad_name"
    MISSING_COLUMNS = "missing_columns"
    # The isolated parser (support.ingest.sandbox) hit a limit or died.
    PARSE_TIMEOUT = "parse_timeout"
    PARSE_MEMORY = "parse_memory"
    PARSE_CRASHED = "parse_crashed"


class IngestError(Exception):
    """A document that cannot be ingested: `code` is machine-readable, the message is for people.

    Same shape as `support.exceptions.SupportError` (code + message) so the ingest service can
    re-raise it as `DocumentRejected(err.message, code=err.code)` without this package
    depending on the Django app.
    """

    def __init__(self, code: IngestErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        return f"IngestError({self.code.value!r}, {self.message!r})"
