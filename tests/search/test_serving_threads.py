"""Serving processes search with one faiss thread and the configured torch threads."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import faiss
import pytest
import torch
from django.test import override_settings

from chatbot import celery as celery_module
from support.backends import serving_threads_configure


@pytest.fixture
def restore_threads() -> Iterator[None]:
    torch_before, faiss_before = torch.get_num_threads(), faiss.omp_get_max_threads()
    yield
    torch.set_num_threads(torch_before)
    faiss.omp_set_num_threads(faiss_before)


def test_one_search_thread_and_model_threads_or_one(restore_threads: None) -> None:
    faiss.omp_set_num_threads(2)
    with override_settings(SUPPORT_MODEL_THREADS=0):
        serving_threads_configure()
    assert faiss.omp_get_max_threads() == 1
    assert torch.get_num_threads() == 1
    with override_settings(SUPPORT_MODEL_THREADS=2):
        serving_threads_configure()
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(("pool", "configured"), [("threads", True), ("prefork", False)])
def test_worker_init_configures_single_process_pools_only(
    restore_threads: None, pool: str, configured: bool
) -> None:
    faiss.omp_set_num_threads(2)
    celery_module._serving_threads_in_worker(sender=SimpleNamespace(pool_cls=pool))
    assert (faiss.omp_get_max_threads() == 1) is configured
    celery_module._serving_threads_in_child()
    assert faiss.omp_get_max_threads() == 1
