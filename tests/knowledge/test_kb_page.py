from pathlib import Path

import pytest
from django.test import Client

from support import knowledge
from tests.knowledge.test_knowledge import ROUTER_MD

pytestmark = pytest.mark.django_db(transaction=True)


def test_citation_page_shows_passages_escaped_and_hides_disabled(kb_env: Path) -> None:
    doc = knowledge.document_upload(
        filename="router.txt",
        data=ROUTER_MD + b"\n\nType <script>alert(1)</script> into the box to test it.\n",
        queue=False,
    )
    knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    chunk = doc.chunks.order_by("order").first()
    page = Client().get(f"/kb/{doc.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert f'id="chunk-{chunk.pk}"' in body
    assert "Hold the reset button" in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body
    knowledge.document_set_enabled(document_id=doc.pk, enabled=False)
    assert Client().get(f"/kb/{doc.pk}/").status_code == 404
    assert Client().get("/kb/999999/").status_code == 404
