"""`manage.py chat_export --out FILE [--qtype Q8_0] [--verify N] [--backend auto] [--json]`.

Exports the served chat model (the specialised version when one is published, else the
shipped GGUF) as a GGUF file of the given type and verifies it against the torch model on N
demo prompts (docs/learning.md, "Export and verification"). Exit status 1 when the export
fails its check; nothing is then written at FILE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.learning.chat_export import (
    QTYPES,
    VERIFY_PROMPTS,
    ExportError,
    chat_model_export,
)
from support.llm.errors import LlmError


class Command(BaseCommand):
    help = "Export the served chat model as GGUF (Q8_0, Q4_1, Q4_0 or F32) and verify it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="the GGUF file to write")
        parser.add_argument("--qtype", default="Q8_0", choices=QTYPES, help="weight type")
        parser.add_argument(
            "--verify",
            type=int,
            default=VERIFY_PROMPTS,
            metavar="N",
            help=f"compare greedy tokens on N demo prompts (default {VERIFY_PROMPTS}; 0: skip)",
        )
        parser.add_argument(
            "--backend",
            default="auto",
            choices=("auto", "llamacpp", "ctransformers"),
            help="the GGUF runtime to verify with (auto: llama-cpp-python when installed)",
        )
        parser.add_argument("--threads", type=int, default=None, help="torch/ggml threads")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verify"] < 0:
            raise CommandError("--verify must be 0 or more")
        try:
            result = chat_model_export(
                out=options["out"],
                qtype=options["qtype"],
                verify_prompts=options["verify"],
                backend=options["backend"],
                threads=options["threads"],
            )
        except (ExportError, LlmError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        check = result.check.summary() if result.check is not None else None
        if options["json"]:
            data = {
                "path": str(result.path),
                "source": str(result.source),
                "qtype": result.qtype,
                "size_bytes": result.size_bytes,
                "seconds": round(result.seconds, 1),
                "metadata": result.metadata,
                "check": check,
            }
            self.stdout.write(json.dumps(data, sort_keys=True))
            return
        self.stdout.write(
            f"wrote {result.path} ({result.qtype}, {result.size_bytes / 1e6:.1f} MB) from "
            f"{result.source.name} in {result.seconds:.0f} s"
        )
        if check is None:
            self.stdout.write("not verified (--verify 0)")
        else:
            self.stdout.write(
                f"verified on {check['backend']}: {check['exact']}/{check['prompts']} greedy "
                f"continuations identical, agreement {check['agreement']:.2f} "
                f"(mean matching prefix {check['mean_prefix_tokens']:.1f} of "
                f"{check['max_new_tokens']} tokens)"
            )
