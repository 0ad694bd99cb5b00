"""`manage.py specialise [--retrieval] [--model] [--facts] [--json] [--force]` and
`specialise --rollback [--model | --facts]`.

`--facts` (alone) trains the fact ranker, the choice of the sentence a quote quotes
(support/learning/fact_train.py), gates it on the held-back examples' answer F1 and promotes it
or not; `--rollback --facts` serves the previous version (or the lexical ranking) again.

Trains what is asked for (the retriever: `--retrieval`, also what runs without a flag; the chat
model: `--model`; both: the retriever first), runs the gate, promotes or not (docs/learning.md).
Exit status 0 whether promoted or not; 1 only when it could not run (another run holds the lock,
no knowledge base, a failed export check, nothing to roll back to). `--json` prints the report:
`promoted`, `before` and `after` per slice, `trained_on`, `held_back`, `seconds` (and more); with
both flags, an object with the two reports under "retrieval" and "model".
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.learning.chat_specialise import ModelReport, model_rollback, model_specialise
from support.learning.fact_train import FactsReport, fact_ranker_rollback, facts_specialise
from support.learning.specialise import (
    SpecialiseBusy,
    SpecialiseCancelled,
    SpecialiseReport,
    SpecialiseUnavailable,
    retriever_rollback,
    specialise,
)


class Command(BaseCommand):
    help = "Specialise the retriever on approved examples; promoted only if the gate allows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--retrieval", action="store_true", help="fine-tune the retriever")
        parser.add_argument("--model", action="store_true", help="fine-tune the chat model")
        parser.add_argument(
            "--facts", action="store_true", help="learn which sentence a quote quotes"
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--force", action="store_true", help="promote even if the gate refuses (logged)"
        )
        parser.add_argument(
            "--rollback",
            action="store_true",
            help="serve the previous retriever (with --model: chat model) version again",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["facts"]:
            if options["model"] or options["retrieval"]:
                raise CommandError("--facts runs alone (without --model or --retrieval)")
            self._facts(
                rollback=options["rollback"], force=options["force"], as_json=options["json"]
            )
            return
        if options["rollback"] and options["model"]:
            self._model_rollback(as_json=options["json"])
            return
        if options["model"]:
            reports: dict[str, Any] = {}
            try:
                if options["retrieval"]:
                    reports["retrieval"] = specialise(
                        force=options["force"], progress=None if options["json"] else _Bar()
                    )
                    if not options["json"]:
                        self.stdout.write(_render(reports["retrieval"]))
                reports["model"] = model_specialise(
                    force=options["force"], progress=None if options["json"] else _Bar()
                )
            except (SpecialiseBusy, SpecialiseUnavailable, SpecialiseCancelled) as exc:
                raise CommandError(str(exc)) from exc
            if options["json"]:
                data = {k: r.to_json() for k, r in reports.items()}
                self.stdout.write(
                    json.dumps(data if len(data) > 1 else data["model"], sort_keys=True)
                )
            else:
                self.stdout.write(_render_model(reports["model"]))
            return
        try:
            if options["rollback"]:
                result = retriever_rollback()
                label = (
                    f"retriever-v{result.model_version}"
                    if result.model_version
                    else ("the shipped model")
                )
                if options["json"]:
                    self.stdout.write(
                        json.dumps(
                            {
                                "rolled_back_to": result.model_version,
                                "index_version": result.index_version,
                                "seconds": round(result.seconds, 2),
                            }
                        )
                    )
                else:
                    self.stdout.write(
                        f"rolled back to {label}; index version {result.index_version}"
                    )
                return
            report = specialise(
                force=options["force"], progress=None if options["json"] else _Bar()
            )
        except (SpecialiseBusy, SpecialiseUnavailable, SpecialiseCancelled) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.to_json(), sort_keys=True))
        else:
            self.stdout.write(_render(report))

    def _facts(self, *, rollback: bool, force: bool, as_json: bool) -> None:
        try:
            if rollback:
                version = fact_ranker_rollback()
                if as_json:
                    self.stdout.write(json.dumps({"rolled_back_to": version}))
                else:
                    label = f"fact-ranker-v{version}" if version else "the lexical ranking"
                    self.stdout.write(f"fact selection rolled back to {label}")
                return
            report = facts_specialise(force=force, progress=None if as_json else _Bar())
        except (SpecialiseBusy, SpecialiseUnavailable, SpecialiseCancelled) as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(report.to_json(), sort_keys=True))
        else:
            self.stdout.write(_render_facts(report))

    def _model_rollback(self, *, as_json: bool) -> None:
        try:
            result = model_rollback()
        except (SpecialiseBusy, SpecialiseUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(
                json.dumps(
                    {"rolled_back_to": result.model_version, "seconds": round(result.seconds, 2)}
                )
            )
        else:
            label = (
                f"model-v{result.model_version}" if result.model_version else "the shipped model"
            )
            self.stdout.write(f"chat model rolled back to {label}")


class _Bar:
    """A tqdm bar per stage on standard error."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self._stage:
            if self._bar is not None:
                self._bar.close()
            self._stage = stage
            self._bar = tqdm(total=total or None, desc=stage, unit="step", leave=True)
        bar = self._bar
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()
        if total and done >= total:
            bar.close()
            self._bar = None
            self._stage = ""


def _render(report: SpecialiseReport) -> str:
    lines = [
        report.headline(),
        f"trained on {report.trained_on} pair(s) in {report.training_seconds:.1f} s "
        f"({report.steps} step(s)); held back {report.held_back}; {report.seconds:.1f} s in all",
    ]
    for name, before in report.before.items():
        after = report.after[name]
        lines.append(
            f"  {name:<10} n={before.n:<4} recall@5 {before.recall_at_5:.3f} -> "
            f"{after.recall_at_5:.3f}   MRR@10 {before.mrr_at_10:.3f} -> {after.mrr_at_10:.3f}"
        )
    for item in report.worse[:20]:
        lines.append(
            f"  worse: #{item['example']} rank {item['rank_before']} -> {item['rank_after']}: "
            f"{item['question']}"
        )
    if report.promoted:
        lines.append(
            f"serving retriever-v{report.model_version} (index version {report.index_version})"
        )
    return "\n".join(lines)


def _render_facts(report: FactsReport) -> str:
    before, after = report.before, report.after
    lines = [
        report.headline(),
        f"trained on {report.trained_on} example(s) (C {report.cv.get('chosen_c')}, "
        f"cross-validated); held back {report.held_back}; {report.seconds:.1f} s in all",
        f"  held_back  n={before['questions']}  answer F1 {before['answer_f1']} -> "
        f"{after['answer_f1']} ({after.get('changed', 0)} quote(s) changed)",
    ]
    if report.promoted:
        lines.append(f"serving fact-ranker-v{report.model_version}")
    return "\n".join(lines)


def _render_model(report: ModelReport) -> str:
    lines = [
        report.headline(),
        f"trained on {report.trained_on} example(s) in {report.training_seconds:.1f} s "
        f"({report.steps} step(s), peak RSS {report.peak_rss_mb:.0f} MB); held back "
        f"{report.held_back}; {report.seconds:.1f} s in all",
    ]
    for export in report.exports:
        lines.append(
            f"  export {export['qtype']}: check {'ok' if export['ok'] else 'FAILED'}, agreement "
            f"{export['agreement']:.3f} on {export['prompts']} prompts"
            + (" (served)" if export["qtype"] == report.served_qtype else "")
        )
    keys = (
        ("answer_f1", "F1"),
        ("support", "support"),
        ("declined_when_should", "declined when should"),
        ("ttft_ms", "TTFT ms"),
        ("tokens_per_s", "tokens/s"),
    )
    for name, before in report.before.items():
        after = report.after.get(name, {})
        cells = "   ".join(
            f"{label} {before.get(key)} -> {after.get(key)}"
            for key, label in keys
            if before.get(key) is not None or after.get(key) is not None
        )
        lines.append(f"  {name:<10} n={before.get('questions')}  {cells}")
    for item in report.worse[:20]:
        lines.append(f"  worse ({', '.join(item['reasons'])}): {item['question']}")
    if report.promoted:
        lines.append(f"serving model-v{report.model_version} ({report.served_qtype})")
    return "\n".join(lines)
