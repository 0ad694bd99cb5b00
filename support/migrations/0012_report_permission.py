"""The reports' permission (`support.view_reports`) and the "Support managers" group that has it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen: what this migration grants (and its reverse removes).
GROUP = "Support managers"
PERMISSIONS = ("view_reports",)


def _permissions(apps):
    # Permissions are normally created after all migrations ran; the group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.filter(content_type__app_label="support", codename__in=PERMISSIONS)
    missing = set(PERMISSIONS) - set(perms.values_list("codename", flat=True))
    if missing:
        raise RuntimeError(f"Permissions missing for {GROUP}: {sorted(missing)}")
    return perms


def grant(apps, schema_editor):
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name=GROUP)
    group.permissions.add(*_permissions(apps))


def revoke(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0011_reports"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="reportday",
            options={
                "default_permissions": (),
                "ordering": ("day", "channel"),
                "permissions": [("view_reports", "Can view the support reports and /metrics")],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
