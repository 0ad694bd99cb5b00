from django.urls import path

from . import views

app_name = "support"

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
