"""The staff roles and the model permissions each one carries."""

from __future__ import annotations

SUPPORT_AGENTS = "Support agents"
KNOWLEDGE_ADMINS = "Knowledge admins"
# Reads the reports (docs/reports.md) and /metrics; sees no conversation through them.
SUPPORT_MANAGERS = "Support managers"

# (group, app_label, codename). Agents work conversations and escalations and may read the
# knowledge base; knowledge admins manage documents and see no conversations.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    SUPPORT_AGENTS: (
        "view_conversation",
        "change_conversation",
        "view_message",
        "add_message",
        "view_escalation",
        "change_escalation",
        "view_feedback",
        "view_knowledgedocument",
        "view_chunk",
        # The agent workspace (support.handoff.agents): the queue, claiming, replies, notes.
        "work_escalations",
        "view_cannedresponse",
        "add_cannedresponse",
        "change_cannedresponse",
        "delete_cannedresponse",
        "view_holiday",
    ),
    KNOWLEDGE_ADMINS: (
        "view_knowledgedocument",
        "add_knowledgedocument",
        "change_knowledgedocument",
        "delete_knowledgedocument",
        "view_chunk",
        # Sensitive topics that hand conversations to people (support.handoff.escalation).
        "view_sensitivetopic",
        "add_sensitivetopic",
        "change_sensitivetopic",
        "delete_sensitivetopic",
        # The review queue of examples the bot learns from (support.learning).
        "view_example",
        "change_example",
        # Golden questions and the gate's reports (support.golden).
        "view_goldenquestion",
        "add_goldenquestion",
        "change_goldenquestion",
        "delete_goldenquestion",
        "view_gatereport",
        # Runs of specialising the retriever: watch them; start and cancel (change).
        "view_specialiserun",
        "change_specialiserun",
    ),
    SUPPORT_MANAGERS: ("view_reports",),
}


def roles_ensure() -> None:
    """Create or repair every group with exactly their permissions (idempotent).

    The data migration does this on `migrate`; this is for databases flushed since (tests) and
    for `manage.py roles_sync` after a permission change.
    """
    from django.contrib.auth.models import Group, Permission

    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="support", codename__in=codenames)
        group.permissions.set(perms)
