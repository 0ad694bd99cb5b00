from typing import Any

from django.core.management.base import BaseCommand

from support.demo import demo_admin_ensure, demo_kb_ensure


class Command(BaseCommand):
    help = "Create the demo admin (only if no superuser exists) and load the demo knowledge base."

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_admin_ensure()
        if result.admin_created:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created demo admin '{result.admin_username}' "
                    f"with password: {result.admin_password}"
                )
            )
        else:
            self.stdout.write(f"Admin user exists: {result.admin_username}")
        kb = demo_kb_ensure()
        if kb.skipped:
            self.stdout.write("Knowledge base has documents; demo documents not loaded.")
        else:
            self.stdout.write(f"Loaded {kb.loaded} demo documents (index v{kb.index_version}).")
