"""Admin header pieces for agents: the escalation queue link with its live count badge."""

from __future__ import annotations

from typing import Any

from django import template

from ..handoff import agents

register = template.Library()


def _agent_request(context: Any) -> Any:
    request = context.get("request")
    user = getattr(request, "user", None)
    return request if agents.is_support_agent(user) else None


@register.inclusion_tag("admin/support/agent/header_link.html", takes_context=True)
def agent_queue_link(context: Any) -> dict[str, Any]:
    """The header link (agents only); agent.js keeps the badge current."""
    from ..agent_admin import workspace_config

    request = _agent_request(context)
    if request is None:
        return {"show": False}
    return {
        "show": True,
        "count": agents.escalation_queue_count(),
        "config": workspace_config(request),
    }


@register.inclusion_tag("admin/support/agent/assets.html", takes_context=True)
def agent_workspace_assets(context: Any) -> dict[str, Any]:
    return {"show": _agent_request(context) is not None}
