"""Domain errors. Adapters (consumers, views, commands) map them to error frames or messages."""


class SupportError(Exception):
    """Base class: `code` is machine-readable, the message is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConversationClosed(SupportError):
    code = "conversation_closed"


class ConversationNotFound(SupportError):
    code = "conversation_not_found"


class InvalidMessage(SupportError):
    code = "invalid_message"


class DocumentRejected(SupportError):
    code = "document_rejected"


class GenerationUnavailable(SupportError):
    code = "generation_unavailable"


class AlreadyClaimed(SupportError):
    code = "already_claimed"


class NotAssigned(SupportError):
    code = "not_assigned"


class NotQueued(SupportError):
    code = "not_queued"


class NotAnAgent(SupportError):
    code = "not_an_agent"


class EmailNotSent(SupportError):
    code = "email_failed"
