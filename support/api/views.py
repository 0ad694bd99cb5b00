"""The /api/v1/ endpoints: thin adapters (parse, one service call, format) over the same
services the widget, the admin and the commands use."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db.models import QuerySet
from django.http import HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import conversations, events, jobs, knowledge
from ..conf import get_support_settings
from ..handoff import agents
from ..models import (
    ApiToken,
    Conversation,
    KnowledgeDocument,
    Message,
    WebhookDelivery,
    WebhookSubscription,
)
from ..webhooks import delivery as webhook_delivery
from ..webhooks import subscriptions
from . import serializers as s
from .idempotency import Pending, Replay, idempotency_begin, idempotency_finish
from .problems import PROBLEMS, Problem, problem_body
from .tokens import token_create

READ, WRITE, KNOWLEDGE, AGENT = (scope.value for scope in ApiToken.Scope)
VIEW_CONVERSATION = "support.view_conversation"
WORK = "support.work_escalations"


class ApiView(APIView):
    """Scopes and role permissions per method (support.api.permissions), Idempotency-Key on
    POST (support.api.idempotency), problem documents for every error."""

    scopes: dict[str, tuple[str, ...]] = {}
    perms: dict[str, tuple[str, ...]] = {}
    customer_ok: dict[str, bool] = {}
    _idempotency: Pending | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self._idempotency = None
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key is not None:
            self._idempotency = idempotency_begin(token=self.token(), key=key, request=request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Replay):
            return exc.response  # type: ignore[return-value]
        return super().handle_exception(exc)

    def finalize_response(  # type: ignore[override]
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        pending, self._idempotency = self._idempotency, None
        if pending is not None:
            idempotency_finish(pending, response)
        return response

    # helpers
    def token(self) -> ApiToken:
        token = self.request.auth
        assert isinstance(token, ApiToken)  # BearerTokenAuthentication is the only scheme
        return token

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation, if this token may see it (a customer token: only its own)."""
        try:
            pk = UUID(hex=conversation_id)
        except ValueError:
            raise Problem("conversation_not_found", "No such conversation.") from None
        token = self.token()
        if token.is_customer and token.conversation_id != pk:
            raise Problem("conversation_not_found", "No such conversation.")
        conv = Conversation.objects.select_related("assigned_agent").filter(pk=pk).first()
        if conv is None:
            raise Problem("conversation_not_found", "No such conversation.")
        return conv

    def validated(self, serializer_class: type[Any], **kwargs: Any) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class Cursor(CursorPagination):
    page_size_query_param = "page_size"
    max_page_size = 200

    def __init__(self, ordering: str) -> None:
        self.ordering = ordering
        self.page_size = get_support_settings().api_page_size


def paginated(
    view: ApiView, queryset: QuerySet[Any], serializer: type[Any], ordering: str
) -> Response:
    pager = Cursor(ordering)
    page = pager.paginate_queryset(queryset, view.request, view=view)
    data = serializer(page, many=True, context={"request": view.request}).data
    return pager.get_paginated_response(data)


def _when(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise Problem("validation_failed", f"{name} must be an ISO 8601 date-time.")
    return parsed


# --- conversations ------------------------------------------------------------------------------
class ConversationList(ApiView):
    scopes = {"GET": (READ,), "POST": (WRITE,)}
    perms = {"GET": (VIEW_CONVERSATION,), "POST": (VIEW_CONVERSATION, "support.add_message")}
    customer_ok = {"GET": True}

    @extend_schema(
        summary="List conversations (newest first, cursor pagination)",
        parameters=[
            OpenApiParameter("status", str, enum=Conversation.Status.values),
            OpenApiParameter("channel", str, enum=Conversation.Channel.values),
            OpenApiParameter("customer_email", str),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=s.ConversationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        rows = Conversation.objects.select_related("assigned_agent")
        token = self.token()
        if token.is_customer:
            rows = rows.filter(pk=token.conversation_id or uuid.UUID(int=0))
        params = request.query_params
        if params.get("status"):
            rows = rows.filter(status=params["status"])
        if params.get("channel"):
            rows = rows.filter(channel=params["channel"])
        if params.get("customer_email"):
            rows = rows.filter(customer_email__iexact=params["customer_email"])
        after, before = _when(request, "created_after"), _when(request, "created_before")
        if after:
            rows = rows.filter(created_at__gte=after)
        if before:
            rows = rows.filter(created_at__lt=before)
        return paginated(self, rows, s.ConversationSerializer, "-created_at")

    @extend_schema(
        summary="Start a conversation for a custom channel",
        request=s.ConversationCreateSerializer,
        responses={201: s.ConversationCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.ConversationCreateSerializer)
        conv = conversations.conversation_start(channel=Conversation.Channel.API, **data)
        new = token_create(
            user=request.user,
            name=f"customer of {conv.pk.hex[:8]}",
            scopes=[READ, WRITE],
            conversation_id=conv.pk,
        )
        body = {
            "conversation": s.ConversationSerializer(conv, context={"request": request}).data,
            "customer_token": new.plaintext,
        }
        location = request.build_absolute_uri(f"/api/v1/conversations/{conv.pk.hex}/")
        return Response(body, status=201, headers={"Location": location})


class ConversationDetail(ApiView):
    scopes = {"GET": (READ,)}
    perms = {"GET": (VIEW_CONVERSATION,)}
    customer_ok = {"GET": True}

    @extend_schema(summary="Read a conversation", responses=s.ConversationSerializer)
    def get(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        return Response(s.ConversationSerializer(conv, context={"request": request}).data)


class ConversationClose(ApiView):
    scopes = {"POST": (AGENT,)}
    perms = {"POST": (WORK,)}

    @extend_schema(
        summary="Resolve (close) a conversation", request=None, responses=s.ConversationSerializer
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        conv = agents.conversation_resolve(conversation_id=conv.pk, agent=request.user)
        return Response(s.ConversationSerializer(conv, context={"request": request}).data)


class ConversationHandoff(ApiView):
    scopes = {"POST": (WRITE, AGENT)}
    perms = {"POST": (VIEW_CONVERSATION,)}
    customer_ok = {"POST": True}

    @extend_schema(
        summary="Hand the conversation to a person (queue it)",
        request=None,
        responses=OpenApiResponse(description="The customer's status line"),
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        return Response(conversations.handoff_request(conversation_id=conv.pk))


class ConversationHandBack(ApiView):
    scopes = {"POST": (AGENT,)}
    perms = {"POST": (WORK,)}

    @extend_schema(
        summary="Hand the conversation back to the bot",
        request=None,
        responses=s.ConversationSerializer,
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        conv = agents.conversation_hand_back(conversation_id=conv.pk, agent=request.user)
        return Response(s.ConversationSerializer(conv, context={"request": request}).data)


class ConversationRating(ApiView):
    scopes = {"POST": (WRITE,)}
    perms = {"POST": (VIEW_CONVERSATION,)}
    customer_ok = {"POST": True}

    @extend_schema(
        summary="Rate an ended conversation (1-5, optional comment; again replaces)",
        request=s.RatingSerializer,
        responses=s.ConversationSerializer,
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        token = self.token()
        if not token.is_customer and conv.channel != Conversation.Channel.API:
            raise Problem(
                "permission_denied",
                "A rating comes from the customer's token, or a write token on a conversation "
                "of the API channel.",
            )
        data = self.validated(s.RatingSerializer)
        conv = conversations.conversation_rate(
            conversation_id=conv.pk, rating=data["rating"], comment=data.get("comment", "")
        )
        return Response(s.ConversationSerializer(conv, context={"request": request}).data)


class MessageList(ApiView):
    scopes = {"GET": (READ,), "POST": (WRITE, AGENT)}
    perms = {"GET": ("support.view_message",)}
    customer_ok = {"GET": True, "POST": True}

    @extend_schema(
        summary="List a conversation's messages (oldest first, cursor pagination)",
        parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
        responses=s.MessageSerializer(many=True),
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        rows = Message.objects.filter(conversation=conv).select_related("author")
        if self.token().is_customer:
            rows = rows.filter(internal=False)
        return paginated(self, rows, s.MessageSerializer, "id")

    @extend_schema(
        summary="Post a message: as an agent, or as the customer of a custom channel",
        request=s.MessageCreateSerializer,
        responses={201: s.MessageSerializer, 200: s.MessageSerializer},
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        data = self.validated(s.MessageCreateSerializer)
        token = self.token()
        if data["role"] == "agent":
            if AGENT not in token.scopes or token.is_customer:
                raise Problem("scope_missing", "Replying as an agent needs the agent scope.")
            msg = agents.agent_reply_post(
                conversation_id=conv.pk, agent=request.user, text=data["text"]
            )
            created = True
        else:
            if not token.is_customer and (
                WRITE not in token.scopes or conv.channel != Conversation.Channel.API
            ):
                raise Problem(
                    "permission_denied",
                    "Customer messages come from the customer's token, or a write token on a "
                    "conversation of the API channel.",
                )
            client_id = (
                data.get("client_id") or request.headers.get("Idempotency-Key") or uuid.uuid4().hex
            )
            posted = conversations.message_post(
                conversation_id=conv.pk, text=data["text"], client_id=client_id[:64]
            )
            msg, created = posted.message, posted.created
        return Response(s.MessageSerializer(msg).data, status=201 if created else 200)


# --- knowledge documents -----------------------------------------------------------------------
class DocumentList(ApiView):
    scopes = {"GET": (READ, KNOWLEDGE), "POST": (KNOWLEDGE,)}
    perms = {"GET": ("support.view_knowledgedocument",), "POST": ("support.add_knowledgedocument",)}
    parser_classes = (MultiPartParser, JSONParser)

    @extend_schema(
        summary="List knowledge documents with their status",
        parameters=[
            OpenApiParameter("status", str, enum=KnowledgeDocument.Status.values),
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=s.DocumentSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        rows = KnowledgeDocument.objects.all()
        if request.query_params.get("status"):
            rows = rows.filter(status=request.query_params["status"])
        return paginated(self, rows, s.DocumentSerializer, "-created_at")

    @extend_schema(
        summary="Upload a document (multipart); it is ingested by a worker",
        request={"multipart/form-data": s.DocumentUploadSerializer},
        responses={201: s.DocumentSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.DocumentUploadSerializer)
        upload = data["file"]
        if upload.size > get_support_settings().max_upload_bytes:
            raise Problem("payload_too_large", "The file is larger than SUPPORT_MAX_UPLOAD_BYTES.")
        doc = knowledge.document_upload(
            filename=upload.name or "upload",
            data=upload.read(),
            title=data.get("title", ""),
            source_url=data.get("source_url", ""),
            uploaded_by=request.user,
        )
        location = request.build_absolute_uri(f"/api/v1/documents/{doc.pk}/")
        return Response(s.DocumentSerializer(doc).data, status=201, headers={"Location": location})


class DocumentDetail(ApiView):
    scopes = {"GET": (READ, KNOWLEDGE), "DELETE": (KNOWLEDGE,)}
    perms = {
        "GET": ("support.view_knowledgedocument",),
        "DELETE": ("support.delete_knowledgedocument",),
    }

    @extend_schema(summary="Read a document", responses=s.DocumentSerializer)
    def get(self, request: Request, document_id: int) -> Response:
        return Response(
            s.DocumentSerializer(get_object_or_404(KnowledgeDocument, pk=document_id)).data
        )

    @extend_schema(
        summary="Delete a document and its chunks",
        description="With golden questions an indexed document is deleted once the index "
        "without it passes them: 202 with the document (`pending_removal: delete`) until then.",
        responses={204: None, 202: s.DocumentSerializer},
    )
    def delete(self, request: Request, document_id: int) -> Response:
        get_object_or_404(KnowledgeDocument, pk=document_id)
        if knowledge.document_delete(document_id=document_id):
            return Response(status=204)
        doc = get_object_or_404(KnowledgeDocument, pk=document_id)
        return Response(s.DocumentSerializer(doc).data, status=202)


class DocumentAction(ApiView):
    scopes = {"POST": (KNOWLEDGE,)}
    perms = {"POST": ("support.change_knowledgedocument",)}
    action = ""

    @extend_schema(
        summary="Re-index, disable or enable a document",
        request=None,
        responses=s.DocumentSerializer,
    )
    def post(self, request: Request, document_id: int) -> Response:
        get_object_or_404(KnowledgeDocument, pk=document_id)
        if self.action == "reindex":
            doc = knowledge.document_reindex(document_id=document_id)
        else:
            doc = knowledge.document_set_enabled(
                document_id=document_id, enabled=self.action == "enable"
            )
        doc.refresh_from_db()
        return Response(s.DocumentSerializer(doc).data)


# --- escalation queue ---------------------------------------------------------------------------
class EscalationList(ApiView):
    scopes = {"GET": (READ, AGENT)}
    perms = {"GET": (WORK,)}

    @extend_schema(
        summary="The escalation queue: waiting and claimed, oldest first",
        responses=s.QueueSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(agents.escalation_queue_list().as_dict())


class EscalationClaim(ApiView):
    scopes = {"POST": (AGENT,)}
    perms = {"POST": (WORK,)}

    @extend_schema(
        summary="Claim a waiting conversation", request=None, responses=s.ConversationSerializer
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conv = self.conversation(conversation_id)
        agents.escalation_claim(conversation_id=conv.pk, agent=request.user)
        conv.refresh_from_db()
        return Response(s.ConversationSerializer(conv, context={"request": request}).data)


# --- webhooks -------------------------------------------------------------------------------------
def _subscriptions(user: Any) -> QuerySet[WebhookSubscription]:
    rows = WebhookSubscription.objects.all()
    return rows if user.is_superuser else rows.filter(owner=user)


class WebhookList(ApiView):
    scopes = {"GET": (READ,), "POST": (WRITE,)}
    perms = {
        "GET": ("support.view_webhooksubscription",),
        "POST": ("support.add_webhooksubscription",),
    }

    @extend_schema(summary="List webhook subscriptions", responses=s.WebhookSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginated(self, _subscriptions(request.user), s.WebhookSerializer, "created_at")

    @extend_schema(
        summary="Subscribe a URL to events (the secret is in this response only)",
        request=s.WebhookUpdateSerializer,
        responses={201: s.WebhookWithSecretSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.WebhookUpdateSerializer)
        if "url" not in data or "events" not in data:
            raise Problem(
                "validation_failed",
                "url and events are required.",
                extra={"errors": {"url": ["required"], "events": ["required"]}},
            )
        sub = subscriptions.subscription_create(
            owner=request.user, url=data["url"], events=data["events"], name=data.get("name", "")
        )
        location = request.build_absolute_uri(f"/api/v1/webhooks/{sub.pk}/")
        return Response(
            s.WebhookWithSecretSerializer(sub).data, status=201, headers={"Location": location}
        )


class WebhookDetail(ApiView):
    scopes = {"GET": (READ,), "PATCH": (WRITE,), "DELETE": (WRITE,)}
    perms = {
        "GET": ("support.view_webhooksubscription",),
        "PATCH": ("support.change_webhooksubscription",),
        "DELETE": ("support.delete_webhooksubscription",),
    }

    def subscription(self, webhook_id: int) -> WebhookSubscription:
        return get_object_or_404(_subscriptions(self.request.user), pk=webhook_id)

    @extend_schema(summary="Read a subscription", responses=s.WebhookSerializer)
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(s.WebhookSerializer(self.subscription(webhook_id)).data)

    @extend_schema(
        summary="Change a subscription (enabled: true resumes a disabled one)",
        request=s.WebhookUpdateSerializer,
        responses=s.WebhookSerializer,
    )
    def patch(self, request: Request, webhook_id: int) -> Response:
        sub = self.subscription(webhook_id)
        data = self.validated(s.WebhookUpdateSerializer)
        sub = subscriptions.subscription_update(subscription_id=sub.pk, **data)
        return Response(s.WebhookSerializer(sub).data)

    @extend_schema(summary="Delete a subscription", responses={204: None})
    def delete(self, request: Request, webhook_id: int) -> Response:
        self.subscription(webhook_id).delete()
        return Response(status=204)


class WebhookRotate(ApiView):
    scopes = {"POST": (WRITE,)}
    perms = {"POST": ("support.change_webhooksubscription",)}

    @extend_schema(
        summary="Rotate the secret: both sign until rotation_ends_at",
        request=None,
        responses=s.WebhookWithSecretSerializer,
    )
    def post(self, request: Request, webhook_id: int) -> Response:
        sub = get_object_or_404(_subscriptions(request.user), pk=webhook_id)
        sub = subscriptions.secret_rotate(subscription_id=sub.pk)
        return Response(s.WebhookWithSecretSerializer(sub).data)


class DeliveryList(ApiView):
    scopes = {"GET": (READ,)}
    perms = {"GET": ("support.view_webhooksubscription",)}

    @extend_schema(
        summary="A subscription's deliveries (newest first)",
        parameters=[
            OpenApiParameter("state", str, enum=WebhookDelivery.State.values),
            OpenApiParameter("cursor", str),
        ],
        responses=s.DeliverySerializer(many=True),
    )
    def get(self, request: Request, webhook_id: int) -> Response:
        sub = get_object_or_404(_subscriptions(request.user), pk=webhook_id)
        rows = sub.deliveries.select_related("event")
        if request.query_params.get("state"):
            rows = rows.filter(state=request.query_params["state"])
        return paginated(self, rows, s.DeliverySerializer, "-created_at")


class DeliveryDetail(ApiView):
    scopes = {"GET": (READ,)}
    perms = {"GET": ("support.view_webhooksubscription",)}

    @extend_schema(
        summary="A delivery with its payload and attempt log", responses=s.DeliveryDetailSerializer
    )
    def get(self, request: Request, webhook_id: int, delivery_id: int) -> Response:
        sub = get_object_or_404(_subscriptions(request.user), pk=webhook_id)
        d = get_object_or_404(
            sub.deliveries.select_related("event").prefetch_related("log"), pk=delivery_id
        )
        return Response(s.DeliveryDetailSerializer(d).data)


class DeliveryRedeliver(ApiView):
    scopes = {"POST": (WRITE,)}
    perms = {"POST": ("support.change_webhooksubscription",)}

    @extend_schema(
        summary="Send a delivery again now (same Webhook-Id)",
        request=None,
        responses={202: s.DeliverySerializer},
    )
    def post(self, request: Request, webhook_id: int, delivery_id: int) -> Response:
        sub = get_object_or_404(_subscriptions(request.user), pk=webhook_id)
        d = get_object_or_404(sub.deliveries, pk=delivery_id)
        webhook_delivery.delivery_redeliver(delivery_id=d.pk)
        d = WebhookDelivery.objects.select_related("event").get(pk=d.pk)
        return Response(s.DeliverySerializer(d).data, status=202)


# --- ask --------------------------------------------------------------------------------------
async def ask_events(
    *, question: str, history: list[dict[str, str]], timeout_s: float
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(kind, payload) pairs for one question: `delta`s, then `answer` or `error`. The answer
    is written by a worker (support.ask.ask_publish) and arrives over the channel layer."""
    layer = get_channel_layer()
    if layer is None:
        yield "error", {"code": "generation_unavailable", "detail": "No channel layer."}
        return
    request_id = uuid.uuid4().hex
    channel = await layer.new_channel()
    group = events.ask_group(request_id)
    await layer.group_add(group, channel)
    try:
        await sync_to_async(jobs.ask_answer_enqueue)(
            request_id=request_id, question=question, history=history
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield "error", {"code": "answer_timeout", "detail": "No answer in time."}
                return
            try:
                event = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                continue
            kind = event.get("type")
            if kind == events.ASK_DELTA:
                yield "delta", event["payload"]
            elif kind == events.ASK_DONE:
                yield "answer", event["payload"]
                return
            elif kind == events.ASK_FAILED:
                yield "error", event["payload"]
                return
    finally:
        await layer.group_discard(group, channel)


async def _sse(stream: AsyncIterator[tuple[str, dict[str, Any]]]) -> AsyncIterator[bytes]:
    yield b": answering\n\n"
    async for kind, payload in stream:
        if kind == "error":
            payload = problem_body(
                payload.get("code", "server_error"),
                payload.get("detail", ""),
                status=PROBLEMS.get(payload.get("code", ""), PROBLEMS["server_error"]).status,
            )
        data = json.dumps(payload, ensure_ascii=False)
        yield f"event: {kind}\ndata: {data}\n\n".encode()


async def _first_final(
    stream: AsyncIterator[tuple[str, dict[str, Any]]],
) -> tuple[str, dict[str, Any]]:
    async for kind, payload in stream:
        if kind in ("answer", "error"):
            return kind, payload
    return "error", {"code": "answer_timeout", "detail": "No answer in time."}


class EventStreamRenderer(BaseRenderer):
    """Lets a request accept text/event-stream (the stream itself is not rendered by DRF)."""

    media_type = "text/event-stream"
    format = "sse"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data).encode()


class Ask(ApiView):
    renderer_classes = (JSONRenderer, EventStreamRenderer)
    scopes = {"POST": (READ,)}
    perms = {"POST": ("support.view_knowledgedocument",)}

    @extend_schema(
        summary="Answer a question (the JSON of `manage.py ask --json`; SSE when asked for)",
        request=s.AskSerializer,
        responses={
            (200, "application/json"): s.AskResultSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="event: delta {seq, delta} ... then event: answer {the JSON} "
                "or event: error {a problem document}",
            ),
        },
    )
    def post(self, request: Request) -> HttpResponseBase:
        data = self.validated(s.AskSerializer)
        history = [{"role": t["role"], "text": t["text"]} for t in data.get("history", [])]
        timeout = get_support_settings().answer_timeout_s + 15.0
        wants_stream = data.get("stream") or "text/event-stream" in request.headers.get(
            "Accept", ""
        )
        stream = ask_events(question=data["question"], history=history, timeout_s=timeout)
        if wants_stream:
            response = StreamingHttpResponse(_sse(stream), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        kind, payload = async_to_sync(_first_final)(stream)
        if kind == "error":
            raise Problem(payload.get("code", "server_error"), payload.get("detail", ""))
        return Response(payload)


# --- inbound mail -----------------------------------------------------------------------------
class RawMailParser(BaseParser):
    media_type = "message/rfc822"

    def parse(  # type: ignore[override]
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> bytes:
        limit = get_support_settings().email_max_bytes
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise Problem("payload_too_large", f"The message is larger than {limit} bytes.")
        return bytes(data)


class InboundMail(ApiView):
    scopes = {"POST": (WRITE,)}
    perms = {"POST": ("support.add_emailmessage",)}
    parser_classes = (RawMailParser,)

    @extend_schema(
        summary="Take in a raw RFC 822 e-mail (for a relay or a provider's forwarding)",
        request={"message/rfc822": OpenApiTypes.BINARY},
        responses={202: s.InboundMailResultSerializer, 200: s.InboundMailResultSerializer},
    )
    def post(self, request: Request) -> Response:
        from ..mail.inbound import email_receive

        raw = request.data
        if not isinstance(raw, bytes) or not raw.strip():
            raise Problem("validation_failed", "Send the raw message as the body (message/rfc822).")
        received = email_receive(raw=raw, source="webhook")
        return Response(received.as_dict(), status=200 if received.duplicate else 202)


class ProblemDoc(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    @extend_schema(exclude=True)
    def get(self, request: Request, code: str) -> Response:
        known = PROBLEMS.get(code)
        if known is None:
            raise Problem("not_found", "No such problem type.")
        return Response({"code": code, "status": known.status, "title": known.title})
