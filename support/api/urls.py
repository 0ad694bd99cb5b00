from django.urls import path, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularSwaggerSplitView,
)

from . import views
from .problems import not_found_view

app_name = "api"

_conv = "conversations/<str:conversation_id>"
_hook = "webhooks/<int:webhook_id>"

urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(
            authentication_classes=[], permission_classes=[], throttle_classes=[]
        ),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema",
            authentication_classes=[],
            permission_classes=[],
            throttle_classes=[],
        ),
        name="docs",
    ),
    path("problems/<str:code>/", views.ProblemDoc.as_view(), name="problem"),
    path("conversations/", views.ConversationList.as_view(), name="conversations"),
    path(f"{_conv}/", views.ConversationDetail.as_view(), name="conversation"),
    path(f"{_conv}/close/", views.ConversationClose.as_view(), name="conversation-close"),
    path(f"{_conv}/handoff/", views.ConversationHandoff.as_view(), name="conversation-handoff"),
    path(
        f"{_conv}/hand-back/", views.ConversationHandBack.as_view(), name="conversation-hand-back"
    ),
    path(f"{_conv}/rating/", views.ConversationRating.as_view(), name="conversation-rating"),
    path(f"{_conv}/messages/", views.MessageList.as_view(), name="messages"),
    path("documents/", views.DocumentList.as_view(), name="documents"),
    path("documents/<int:document_id>/", views.DocumentDetail.as_view(), name="document"),
    path(
        "documents/<int:document_id>/reindex/",
        views.DocumentAction.as_view(action="reindex"),
        name="document-reindex",
    ),
    path(
        "documents/<int:document_id>/disable/",
        views.DocumentAction.as_view(action="disable"),
        name="document-disable",
    ),
    path(
        "documents/<int:document_id>/enable/",
        views.DocumentAction.as_view(action="enable"),
        name="document-enable",
    ),
    path("escalations/", views.EscalationList.as_view(), name="escalations"),
    path(
        "escalations/<str:conversation_id>/claim/",
        views.EscalationClaim.as_view(),
        name="escalation-claim",
    ),
    path("webhooks/", views.WebhookList.as_view(), name="webhooks"),
    path(f"{_hook}/", views.WebhookDetail.as_view(), name="webhook"),
    path(f"{_hook}/rotate-secret/", views.WebhookRotate.as_view(), name="webhook-rotate"),
    path(f"{_hook}/deliveries/", views.DeliveryList.as_view(), name="deliveries"),
    path(f"{_hook}/deliveries/<int:delivery_id>/", views.DeliveryDetail.as_view(), name="delivery"),
    path(
        f"{_hook}/deliveries/<int:delivery_id>/redeliver/",
        views.DeliveryRedeliver.as_view(),
        name="delivery-redeliver",
    ),
    path("ask/", views.Ask.as_view(), name="ask"),
    path("mail/inbound/", views.InboundMail.as_view(), name="mail-inbound"),
    re_path(r"^.*$", not_found_view),
]
