"""A separate process for tests/learning/test_chat_kill.py, with fake training and export
(chat_fakes.FakeTools: a step every STEP_S seconds, a checkpoint file per step):

    python -m tests.learning.chat_child setup   # migrate, help pages, examples
    python -m tests.learning.chat_child run     # manage.py specialise --model --json

Settings come from the environment (SUPPORT_DATA_DIR: its SQLite database and chat models).
"""

from __future__ import annotations

import json
import os
import sys

import django


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings.test")
    django.setup()
    from django.core.management import call_command

    from support.learning import chat_specialise
    from tests.learning.chat_fakes import FakeTools, good_answers, help_desk_create

    if argv[0] == "setup":
        call_command("migrate", verbosity=0)
        help_desk_create()
        return 0
    fake = FakeTools(good_answers(), steps=40, step_s=float(os.environ.get("STEP_S", "0")))
    chat_specialise.tools = fake.tools  # type: ignore[assignment]
    call_command("specialise", "--model", "--json")
    print(json.dumps({"resumed_from": fake.resumed_from, "trained": fake.trained}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
