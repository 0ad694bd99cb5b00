"""SensitiveTopic: admin, migration defaults, settings validation."""

from __future__ import annotations

import importlib

import pytest
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from support.conf import get_support_settings
from support.models import SensitiveTopic

from .conftest import TOPICS


def test_registered_in_the_admin() -> None:
    assert admin.site.is_registered(SensitiveTopic)


@pytest.mark.django_db
def test_the_admin_change_list_and_form(admin_client) -> None:  # type: ignore[no-untyped-def]
    assert admin_client.get("/admin/support/sensitivetopic/").status_code == 200
    topic = SensitiveTopic.objects.get(name="Legal threat")
    assert admin_client.get(f"/admin/support/sensitivetopic/{topic.pk}/change/").status_code == 200


def test_the_test_topics_use_seeded_keywords() -> None:
    mig = importlib.import_module("support.migrations.0003_sensitivetopic")
    seeded = {t["name"]: t for t in mig.DEFAULT_TOPICS}
    for topic in TOPICS:
        lines = seeded[topic.name]["keywords"].splitlines()
        assert set(topic.keywords) <= set(lines), topic.name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SUPPORT_ESCALATE_AFTER_FAILURES", 0),
        ("SUPPORT_ESCALATE_NEGATIVE_SENTIMENT", 0.5),
        ("SUPPORT_ESCALATE_REPEAT_SIMILARITY", 0.0),
    ],
)
def test_settings_are_validated(name: str, value: float) -> None:
    with override_settings(**{name: value}), pytest.raises(ImproperlyConfigured, match=name):
        get_support_settings()
