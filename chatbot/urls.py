from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Support administration"
admin.site.site_title = "Support admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("support.api.urls")),
    path("", include("support.urls")),
]
