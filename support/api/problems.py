"""RFC 9457 problem documents: every error of /api/v1/ is `application/problem+json` with
`type`, `title`, `status`, `detail` and a stable machine-readable `code` (the registry below is
the contract; docs/api.md lists it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..conf import get_support_settings
from ..exceptions import SupportError

logger = logging.getLogger(__name__)
CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    title: str


PROBLEMS: dict[str, ProblemType] = {
    "not_authenticated": ProblemType(401, "Authentication required"),
    "token_invalid": ProblemType(401, "Invalid API token"),
    "token_revoked": ProblemType(401, "API token revoked or expired"),
    "scope_missing": ProblemType(403, "The token lacks a scope"),
    "permission_denied": ProblemType(403, "Not allowed"),
    "not_an_agent": ProblemType(403, "Only support agents may do this"),
    "not_found": ProblemType(404, "Not found"),
    "conversation_not_found": ProblemType(404, "No such conversation"),
    "method_not_allowed": ProblemType(405, "Method not allowed"),
    "not_acceptable": ProblemType(406, "Not acceptable"),
    "conversation_closed": ProblemType(409, "Conversation resolved"),
    "already_claimed": ProblemType(409, "Already claimed"),
    "not_queued": ProblemType(409, "Not waiting for a person"),
    "not_assigned": ProblemType(409, "Another agent holds the conversation"),
    "not_resolved": ProblemType(409, "Conversation not ended yet"),
    "duplicate": ProblemType(409, "Duplicate document"),
    "idempotency_in_progress": ProblemType(409, "A request with this Idempotency-Key is running"),
    "payload_too_large": ProblemType(413, "Request too large"),
    "unsupported_media_type": ProblemType(415, "Unsupported media type"),
    "validation_failed": ProblemType(422, "Invalid request"),
    "invalid_message": ProblemType(422, "Invalid message"),
    "message_too_long": ProblemType(422, "Message too long"),
    "bad_frame": ProblemType(422, "Invalid message"),
    "invalid_rating": ProblemType(422, "Invalid rating"),
    "document_rejected": ProblemType(422, "Document rejected"),
    "webhook_url_forbidden": ProblemType(422, "Webhook URL not allowed"),
    "idempotency_key_reused": ProblemType(422, "Idempotency-Key reused for another request"),
    "bad_request": ProblemType(400, "Malformed request"),
    "rate_limited": ProblemType(429, "Too many requests"),
    "server_error": ProblemType(500, "Internal error"),
    "email_failed": ProblemType(502, "E-mail not sent"),
    "generation_unavailable": ProblemType(503, "Answering is unavailable"),
    "answer_timeout": ProblemType(504, "No answer in time"),
}


class Problem(Exception):
    """Raise from a view: becomes a problem document."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status or PROBLEMS.get(code, PROBLEMS["bad_request"]).status
        self.extra = extra or {}
        self.headers = headers or {}


def type_uri(code: str) -> str:
    return f"{get_support_settings().public_url}/api/v1/problems/{code}/"


def problem_body(
    code: str, detail: str, *, status: int, instance: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    known = PROBLEMS.get(code)
    body: dict[str, Any] = {
        "type": type_uri(code),
        "title": known.title if known else code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return body


def problem_response(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    instance: str = "",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    status = status or PROBLEMS.get(code, PROBLEMS["bad_request"]).status
    response = Response(
        problem_body(code, detail, status=status, instance=instance, extra=extra),
        status=status,
        headers=headers,
        content_type=CONTENT_TYPE,
    )
    return response


_SUPPORT_STATUS = {code: p.status for code, p in PROBLEMS.items()}
# Codes of the ingestion checks (support.ingest.errors) all mean "this file was refused".
_DOCUMENT_CODES_409 = {"duplicate"}


def _support_problem(exc: SupportError) -> tuple[str, int]:
    code = exc.code
    if code in _SUPPORT_STATUS:
        return code, _SUPPORT_STATUS[code]
    from ..exceptions import DocumentRejected

    if isinstance(exc, DocumentRejected):
        return code, 409 if code in _DOCUMENT_CODES_409 else 422
    return code, 422


def _validation_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {k: [str(e) for e in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": [str(e) for e in detail]}
    return {"non_field_errors": [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's exception handler: every error becomes a problem document, unknown ones a 500."""
    request = context.get("request")
    instance = request.path if request is not None else ""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, Problem):
        code, status, detail = exc.code, exc.status, exc.detail
        extra, headers = exc.extra, exc.headers
    elif isinstance(exc, SupportError):
        code, status = _support_problem(exc)
        detail = exc.message
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
    elif isinstance(exc, drf.ValidationError):
        code, status, detail = "validation_failed", 422, "The request has invalid fields."
        extra = {"errors": _validation_errors(exc.detail)}
    elif isinstance(exc, drf.ParseError):
        code, status, detail = "bad_request", 400, str(exc.detail)
    elif isinstance(exc, drf.NotAuthenticated):
        code, status, detail = "not_authenticated", 401, str(exc.detail)
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    elif isinstance(exc, drf.AuthenticationFailed):
        code = getattr(exc, "problem_code", "token_invalid")
        status, detail = 401, str(exc.detail)
        headers["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"'
    elif isinstance(exc, drf.PermissionDenied):
        code = getattr(exc, "problem_code", "permission_denied")
        status, detail = 403, str(exc.detail)
    elif isinstance(exc, (drf.NotFound, Http404)):
        code, status, detail = "not_found", 404, "Nothing here (or not for this token)."
    elif isinstance(exc, drf.MethodNotAllowed):
        code, status, detail = "method_not_allowed", 405, str(exc.detail)
    elif isinstance(exc, drf.NotAcceptable):
        code, status, detail = "not_acceptable", 406, str(exc.detail)
    elif isinstance(exc, drf.UnsupportedMediaType):
        code, status, detail = "unsupported_media_type", 415, str(exc.detail)
    elif isinstance(exc, drf.Throttled):
        code, status = "rate_limited", 429
        wait = max(1, round(getattr(exc, "wait", None) or 1))
        detail = f"Too many requests for this token; retry in {wait} s."
        headers["Retry-After"] = str(wait)
        extra = {"retry_after": wait}
    elif isinstance(exc, drf.APIException):
        code, status, detail = "bad_request", exc.status_code, str(exc.detail)
    else:
        logger.exception("API request failed", exc_info=exc)
        code, status, detail = "server_error", 500, "Something went wrong on our side."
    set_rollback()
    return problem_response(
        code, detail, status=status, instance=instance, extra=extra, headers=headers
    )


def not_found_view(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown URLs under /api/v1/ answer with a problem document too."""
    return JsonResponse(
        problem_body("not_found", "No such API endpoint.", status=404, instance=request.path),
        status=404,
        content_type=CONTENT_TYPE,
    )
