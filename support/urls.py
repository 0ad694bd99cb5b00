from django.urls import path

from . import views

app_name = "support"

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("kb/<int:document_id>/", views.kb_document, name="kb_document"),
]
