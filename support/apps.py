from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Customer support"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers checks and the settings-reset hooks; never loads models or indexes here.
        from . import checks, conf  # noqa: F401
