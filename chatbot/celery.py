import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings.local")

app = Celery("chatbot", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _check_before_serving(**_: object) -> None:
    # A worker with a missing or unreadable model file must not start and fail every task later.
    from django.core.management import call_command

    call_command("check")
