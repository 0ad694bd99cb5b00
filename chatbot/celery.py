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


def _serves_from_this_process(sender: object) -> bool:
    # Solo and threads pools (and the embedded mode) serve from the worker's own process. A
    # prefork parent serves nothing: its children set themselves up after the fork.
    pool = getattr(sender, "pool_cls", "")
    return "prefork" not in (pool if isinstance(pool, str) else getattr(pool, "__module__", ""))


@worker_init.connect
def _serving_threads_in_worker(sender: object = None, **_: object) -> None:
    if _serves_from_this_process(sender):
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


# The warm-up runs in a background thread, after the thread settings above (receivers run in
# the order they connect): run inline it would delay consuming by the whole load, and a
# prefork child that takes longer than worker_proc_alive_timeout (4 s) to report up is killed.
@worker_init.connect
def _warm_up_in_worker(sender: object = None, **_: object) -> None:
    if _serves_from_this_process(sender):
        from support.warmup import backends_warm_up_start

        backends_warm_up_start()


@worker_process_init.connect
def _warm_up_in_child(**_: object) -> None:
    from support.warmup import backends_warm_up_start

    backends_warm_up_start()
