"""Run the whole product in one process: ASGI server plus an embedded Celery worker."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chatbot.celery import app as celery_app
from support.conf import get_support_settings
from support.demo import demo_admin_ensure
from support.embedded import EmbeddedWorker


class _Server(uvicorn.Server):
    """Stops the embedded worker during uvicorn's graceful shutdown (SIGINT/SIGTERM)."""

    worker: EmbeddedWorker | None = None

    async def shutdown(self, sockets: Any = None) -> None:
        await super().shutdown(sockets=sockets)
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)


class Command(BaseCommand):
    help = "Serve the product on embedded defaults: ASGI server and a Celery worker thread."
    requires_system_checks = "__all__"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--worker",
            choices=("auto", "yes", "no"),
            default="auto",
            help="Run a Celery worker thread in this process (auto: when the broker is memory://)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        embedded = options["worker"] == "yes" or (
            options["worker"] == "auto" and str(settings.CELERY_BROKER_URL).startswith("memory")
        )
        worker = EmbeddedWorker(celery_app) if embedded else None
        if worker is not None:
            worker.start()
        base = f"http://{host}:{port}"
        worker_text = (
            f"embedded ({worker.concurrency} threads; beat: {', '.join(worker.beat_jobs())}; "
            "specialisation runs train in a child process)"
            if worker
            else "external (celery -A chatbot worker)"
        )
        admin = demo_admin_ensure()
        login = (
            f"user '{admin.admin_username}', password '{admin.admin_password}'"
            if admin.admin_password
            else f"user '{admin.admin_username}' (password as set; "
            f"reset: python manage.py changepassword {admin.admin_username})"
        )
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Demo page:  {base}/",
                    f"  Admin:      {base}/admin/   log in as {login}",
                    f"  Health:     {base}/healthz   {base}/readyz",
                    f"  Data dir:   {get_support_settings().data_dir}",
                    f"  Worker:     {worker_text}",
                    "  Stop with Ctrl-C.",
                    "",
                ]
            )
        )
        self.stdout.flush()
        config = uvicorn.Config(
            "chatbot.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            ws="websockets-sansio",
            log_level="info",
            timeout_graceful_shutdown=10,
        )
        server = _Server(config)
        server.worker = worker
        try:
            server.run()
        finally:
            if worker is not None:
                worker.stop()
