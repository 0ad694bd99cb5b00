"""Golden questions, gate reports and pending removals (issue 14); knowledge admins edit the
golden questions and read the reports."""

from django.conf import settings
from django.contrib.auth.management import create_permissions
import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models

# Frozen: the permissions this migration adds to (and its reverse removes from) the group.
KNOWLEDGE_PERMISSIONS = (
    "view_goldenquestion",
    "add_goldenquestion",
    "change_goldenquestion",
    "delete_goldenquestion",
    "view_gatereport",
)
GROUP = "Knowledge admins"


def _permissions(apps):
    # Permissions are normally created after all migrations ran; the group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.filter(
        content_type__app_label="support", codename__in=KNOWLEDGE_PERMISSIONS
    )
    missing = set(KNOWLEDGE_PERMISSIONS) - set(perms.values_list("codename", flat=True))
    if missing:
        raise RuntimeError(f"Permissions missing for {GROUP}: {sorted(missing)}")
    return perms


def grant(apps, schema_editor):
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name=GROUP)
    group.permissions.add(*_permissions(apps))


def revoke(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name=GROUP).first()
    if group is not None:
        group.permissions.remove(*_permissions(apps))


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0012_report_permission"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="knowledgedocument",
            name="pending_removal",
            field=models.CharField(
                blank=True,
                choices=[("disable", "Disable"), ("delete", "Delete")],
                default="",
                max_length=8,
            ),
        ),
        migrations.CreateModel(
            name="GateReport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("kb_change", "Knowledge-base change"),
                            ("learning", "Learned change"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "decision",
                    models.CharField(
                        choices=[
                            ("promoted", "Promoted (no regression)"),
                            ("held", "Held: waiting for a decision"),
                            ("forced", "Published anyway"),
                            ("kept_old", "Kept the old version"),
                            ("refused", "Refused by the gate"),
                            ("superseded", "Superseded by a newer change"),
                        ],
                        max_length=16,
                    ),
                ),
                ("before", models.JSONField(default=dict)),
                ("after", models.JSONField(default=dict)),
                ("worse", models.JSONField(default=list)),
                (
                    "regressions",
                    models.JSONField(default=list, help_text="Why the gate refused, one per line"),
                ),
                ("before_version", models.PositiveIntegerField(blank=True, null=True)),
                ("after_version", models.PositiveIntegerField(blank=True, null=True)),
                ("fingerprint", models.CharField(blank=True, db_index=True, max_length=200)),
                ("changes", models.JSONField(blank=True, default=dict)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                ("note", models.CharField(blank=True, max_length=300)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        help_text="Who published anyway or kept the old version (empty: the gate itself).",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "documents",
                    models.ManyToManyField(
                        blank=True, related_name="gate_reports", to="support.knowledgedocument"
                    ),
                ),
            ],
            options={
                "ordering": ("-created_at", "-pk"),
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("decision", "held")),
                        fields=("kind",),
                        name="gate_one_held_per_kind",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="GoldenQuestion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("question", models.CharField(max_length=1000)),
                (
                    "should_decline",
                    models.BooleanField(
                        default=False,
                        help_text="The knowledge base does not answer this: the bot must decline.",
                    ),
                ),
                ("note", models.TextField(blank=True)),
                (
                    "active",
                    models.BooleanField(default=True, help_text="Inactive questions are not run."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "document",
                    models.ForeignKey(
                        blank=True,
                        help_text="The document the answer must come from (found among the top 5 passages).",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="golden_questions",
                        to="support.knowledgedocument",
                    ),
                ),
            ],
            options={
                "ordering": ("pk",),
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("document__isnull", False), ("should_decline", False)),
                            models.Q(("document__isnull", True), ("should_decline", True)),
                            _connector="OR",
                        ),
                        name="golden_document_xor_decline",
                        violation_error_message="Give either the expected document or “should be declined”, not both.",
                    ),
                    models.UniqueConstraint(
                        django.db.models.functions.text.Lower("question"),
                        name="golden_unique_question",
                        violation_error_message="This question is already a golden question.",
                    ),
                ],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
