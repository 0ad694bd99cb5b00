"""The agent workspace in the Django admin: the escalation queue and the conversation view.

Views are thin adapters: check the agent permission, parse the form, call one service in
`support.handoff.agents`, and redirect (or answer JSON to the page's script). Customer text is only
ever rendered through Django's autoescaping or, in agent.js, through textContent.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from .admin_access import ViewableBy
from .conf import get_support_settings
from .exceptions import ConversationNotFound, SupportError
from .handoff import agents
from .handoff.hours import business_hours_status
from .models import CannedResponse, EscalationQueue, Holiday

QUEUE_URL = "admin:support_escalationqueue_changelist"
CONVERSATION_URL = "admin:support_agent_conversation"


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _require_agent(request: HttpRequest) -> Any:
    if not agents.is_support_agent(request.user):
        raise PermissionDenied("The agent workspace is for support agents.")
    return request.user


def workspace_config(request: HttpRequest) -> dict[str, Any]:
    """What agent.js needs on every admin page of an agent (rendered with json_script)."""
    return {
        "ws_path": "/ws/agent/",
        "queue_url": reverse(QUEUE_URL),
        "queue_json_url": reverse("admin:support_agent_queue_json"),
        "agent_id": request.user.pk,
    }


def _status_class(status: str) -> str:
    return f"sa-status-{status}"


@admin.register(EscalationQueue)
class AgentWorkspaceAdmin(ViewableBy, admin.ModelAdmin):  # type: ignore[type-arg]
    """No model editing: the queue is the changelist, plus the conversation workspace."""

    may_view = staticmethod(agents.is_support_agent)

    def get_urls(self) -> list[Any]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(view)

        return [
            path("", wrap(self.changelist_view), name="support_escalationqueue_changelist"),
            path("queue.json", wrap(self.queue_json_view), name="support_agent_queue_json"),
            path(
                "<uuid:conversation_id>/",
                wrap(self.conversation_view),
                name="support_agent_conversation",
            ),
            path(
                "<uuid:conversation_id>/<slug:action>/",
                wrap(self.action_view),
                name="support_agent_action",
            ),
        ]

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "workspace_config": workspace_config(request),
            **extra,
        }

    # --- the queue ------------------------------------------------------------------------
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _require_agent(request)
        snapshot = agents.escalation_queue_list()
        return TemplateResponse(
            request,
            "admin/support/agent/queue.html",
            self._context(
                request,
                title="Escalation queue",
                snapshot=snapshot,
                hours=business_hours_status(),
            ),
        )

    def queue_json_view(self, request: HttpRequest) -> HttpResponse:
        return require_GET(self._queue_json)(request)

    def _queue_json(self, request: HttpRequest) -> HttpResponse:
        _require_agent(request)
        data = agents.escalation_queue_list().as_dict()
        for item in (*data["waiting"], *data["active"]):
            item["url"] = reverse(CONVERSATION_URL, args=[UUID(hex=item["conversation_id"])])
        return JsonResponse(data)

    # --- one conversation -----------------------------------------------------------------
    def conversation_view(self, request: HttpRequest, conversation_id: UUID) -> HttpResponse:
        agent = _require_agent(request)
        try:
            ws = agents.conversation_workspace_get(conversation_id=conversation_id, agent=agent)
        except ConversationNotFound as exc:
            raise Http404(exc.message) from exc
        conv = ws.conversation
        return TemplateResponse(
            request,
            "admin/support/agent/conversation.html",
            self._context(
                request,
                title=f"Conversation with {conv.customer_name or 'a customer'}",
                ws=ws,
                conv=conv,
                status_class=_status_class(conv.status),
                other_agents=[a for a in ws.agents if a[0] != agent.pk],
                canned_data=[{"id": c.id, "title": c.title, "text": c.text} for c in ws.canned],
                company_name=get_support_settings().company_name,
                admin_change_url=reverse("admin:support_conversation_change", args=[conv.pk]),
            ),
        )

    # --- actions: one service each --------------------------------------------------------
    def action_view(self, request: HttpRequest, conversation_id: UUID, action: str) -> HttpResponse:
        handler = self.ACTIONS.get(action)
        if handler is None:
            raise Http404("Unknown action.")
        return require_POST(lambda r: self._run(r, conversation_id, handler))(request)

    def _run(self, request: HttpRequest, conversation_id: UUID, handler: Any) -> HttpResponse:
        agent = _require_agent(request)
        here = reverse(CONVERSATION_URL, args=[conversation_id])
        try:
            result: dict[str, Any] = handler(self, request, conversation_id, agent)
        except SupportError as exc:
            if _wants_json(request):
                return JsonResponse(
                    {"ok": False, "code": exc.code, "message": exc.message},
                    status=404 if isinstance(exc, ConversationNotFound) else 409,
                )
            messages.error(request, exc.message)
            if isinstance(exc, ConversationNotFound):
                return redirect(QUEUE_URL)
            return redirect(here)
        if _wants_json(request):
            return JsonResponse({"ok": True, **result.get("json", {})})
        if result.get("message"):
            messages.success(request, result["message"])
        return redirect(result.get("redirect") or here)

    def _claim(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        agents.escalation_claim(conversation_id=cid, agent=agent)
        return {"message": "You have this conversation now; the customer sees your name."}

    def _release(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        agents.escalation_release(conversation_id=cid, agent=agent)
        return {"message": "Back in the queue.", "redirect": reverse(QUEUE_URL)}

    def _assign(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        try:
            to_agent_id = int(request.POST.get("agent", ""))
        except ValueError as exc:
            raise SupportError("Choose an agent.", code="bad_form") from exc
        esc = agents.escalation_assign(conversation_id=cid, agent=agent, to_agent_id=to_agent_id)
        name = agents.agent_display_name(esc.claimed_by) if esc.claimed_by else "them"
        return {"message": f"Assigned to {name}.", "redirect": reverse(QUEUE_URL)}

    def _reply(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        msg = agents.agent_reply_post(
            conversation_id=cid,
            agent=agent,
            text=request.POST.get("text", ""),
            send_email=request.POST.get("send_email") == "on",
        )
        return {"json": {"message_id": msg.pk}}

    def _note(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        note = agents.agent_note_post(
            conversation_id=cid, agent=agent, text=request.POST.get("text", "")
        )
        return {"json": {"message_id": note.pk}}

    def _resolve(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        agents.conversation_resolve(conversation_id=cid, agent=agent)
        return {"message": "Resolved.", "redirect": reverse(QUEUE_URL)}

    def _hand_back(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        agents.conversation_hand_back(conversation_id=cid, agent=agent)
        return {"message": "Handed back to the bot.", "redirect": reverse(QUEUE_URL)}

    def _suggest(self, request: HttpRequest, cid: UUID, agent: Any) -> dict[str, Any]:
        agents.suggested_reply_request(conversation_id=cid, agent=agent)
        return {"message": "Drafting a reply…", "json": {"queued": True}}

    ACTIONS = {
        "claim": _claim,
        "release": _release,
        "assign": _assign,
        "reply": _reply,
        "note": _note,
        "resolve": _resolve,
        "hand-back": _hand_back,
        "suggest": _suggest,
    }


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("title", "text")
    fields = ("title", "text", "enabled")


@admin.register(Holiday)
class HolidayAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("date", "name")
    date_hierarchy = "date"
    fields = ("date", "name")
