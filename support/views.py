from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health, selectors
from .conf import get_support_settings
from .reports.metrics import metrics_allowed, metrics_exposition


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
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (docs/operations.md): for the token's scraper or reports staff."""
    if not metrics_allowed(
        authorization=request.headers.get("Authorization", ""), user=request.user
    ):
        response = HttpResponse("Forbidden: send the metrics token or sign in.\n", status=403)
        if not request.user.is_authenticated:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)


@require_GET
def kb_document(request: HttpRequest, document_id: int) -> HttpResponse:
    """Read-only view of a knowledge-base document; citations link to its passages."""
    doc = selectors.public_document_get(document_id=document_id)
    if doc is None:
        raise Http404("No such document")
    sections = []
    for chunk in selectors.document_chunks_list(document_id=document_id):
        heading = " › ".join(h for h in chunk.heading_path if h != doc.title)
        sections.append(
            {"id": chunk.pk, "heading": heading, "page": chunk.page, "text": chunk.text}
        )
    return render(
        request,
        "support/kb_document.html",
        {
            "document": doc,
            "sections": sections,
            "company_name": get_support_settings().company_name,
        },
    )


@require_GET
def demo(request: HttpRequest) -> HttpResponse:
    conf = get_support_settings()
    return render(request, "support/demo.html", {"company_name": conf.company_name})
