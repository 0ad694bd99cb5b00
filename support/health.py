"""Readiness probes of the services the product depends on."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connections

from chatbot.celery import app as celery_app

from .warmup import WarmupState, backends_warm_up_status

PROBE_TIMEOUT_S = 2
# A process that answers too (the embedded mode) is not ready while it warms its models up, so
# a load balancer sends the first customer after the models are in; after this long it is
# ready anyway (the models then load on first use, as without a warm-up).
WARMUP_READY_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str


def database_probe() -> ProbeResult:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return ProbeResult("database", False, f"{type(exc).__name__}: {exc}")
    return ProbeResult("database", True, connections["default"].vendor)


async def _layer_roundtrip() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    # No prefix: channels-redis serves every "specific." channel of a process through one
    # receive loop, so a probe on its own prefix would wait behind an idle chat consumer.
    channel = await layer.new_channel()
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "readyz.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), PROBE_TIMEOUT_S)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned a different message")
    return type(layer).__name__


def channel_layer_probe() -> ProbeResult:
    try:
        detail = async_to_sync(_layer_roundtrip)()
    except Exception as exc:
        return ProbeResult("channel_layer", False, f"{type(exc).__name__}: {exc}")
    return ProbeResult("channel_layer", True, detail)


def broker_probe() -> ProbeResult:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_S)
            transport = conn.transport_cls
    except Exception as exc:
        return ProbeResult("broker", False, f"{type(exc).__name__}: {exc}")
    return ProbeResult("broker", True, str(transport))


def models_probe() -> ProbeResult | None:
    """The model warm-up of this process; None where there is none (the web process of the
    multi-process deployment, whose workers warm up their own models; SUPPORT_WARMUP off)."""
    status = backends_warm_up_status()
    if status.state is WarmupState.NOT_STARTED:
        return None
    if status.state is WarmupState.WARMING:
        waited = status.elapsed_s >= WARMUP_READY_WAIT_S
        detail = f"warming up for {status.elapsed_s:.0f} s" + (
            "; answering anyway (the models load on first use)" if waited else ""
        )
        return ProbeResult("models", waited, detail)
    assert status.result is not None
    if status.state is WarmupState.PARTIAL:
        return ProbeResult(
            "models",
            True,
            f"warm but for {', '.join(status.result.failed)} (they load on "
            f"first use): {status.result.summary()}",
        )
    return ProbeResult("models", True, f"warm in {status.result.summary()}")


def readiness() -> list[ProbeResult]:
    """Probe the database, the channel layer and the Celery broker, and where this process
    answers too, its model warm-up."""
    results = [database_probe(), channel_layer_probe(), broker_probe()]
    models = models_probe()
    return results if models is None else [*results, models]
