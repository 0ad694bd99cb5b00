"""Who may see an admin page that is read and acted on through its own views only."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class NoEditing:
    """No add, change or delete forms: the rows are read, and acted on through custom views."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ViewableBy(NoEditing):
    """NoEditing, and `may_view(user)` alone decides who sees the page at all (a role, not the
    model's view permission)."""

    @staticmethod
    def may_view(user: Any) -> bool:
        raise NotImplementedError

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.may_view(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.may_view(request.user)
