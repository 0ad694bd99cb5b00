from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health
from .conf import get_support_settings


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results = health.readiness()
    failing = [r.name for r in results if not r.ok]
    body = {
        "status": "unavailable" if failing else "ready",
        "failing": failing,
        "checks": {r.name: {"ok": r.ok, "detail": r.detail} for r in results},
    }
    return JsonResponse(body, status=503 if failing else 200)


@require_GET
def demo(request: HttpRequest) -> HttpResponse:
    conf = get_support_settings()
    return render(request, "support/demo.html", {"company_name": conf.company_name})
