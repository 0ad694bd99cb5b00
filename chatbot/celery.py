import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings.local")

app = Celery("chatbot", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _check_before_serving(**_: object) -> None:
    # A worker with a missing or unreadable model file must not start and fail every task later.
    from django.core.management import call_command

    call_command("check")


@worker_init.connect
def _serving_threads_in_worker(sender: object = None, **_: object) -> None:
    # Solo and threads pools (and the embedded mode) serve from this process. A prefork parent
    # serves nothing: its children set their own after the fork (below).
    pool = getattr(sender, "pool_cls", "")
    if "prefork" not in (pool if isinstance(pool, str) else getattr(pool, "__module__", "")):
        from support.backends import serving_threads_configure
        from support.knowledge import index_sync_loop_start

        serving_threads_configure()
        index_sync_loop_start()


@worker_process_init.connect
def _serving_threads_in_child(**_: object) -> None:
    from support.backends import serving_threads_configure
    from support.knowledge import index_sync_loop_start

    serving_threads_configure()
    index_sync_loop_start()
