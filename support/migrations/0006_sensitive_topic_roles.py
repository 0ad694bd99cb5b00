"""Knowledge admins manage the sensitive topics that escalate conversations."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen: the permissions this migration adds to (and its reverse removes from) the group.
AGENT_PERMISSIONS = (
    "view_sensitivetopic",
    "add_sensitivetopic",
    "change_sensitivetopic",
    "delete_sensitivetopic",
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
        content_type__app_label="support", codename__in=AGENT_PERMISSIONS
    )
    missing = set(AGENT_PERMISSIONS) - set(perms.values_list("codename", flat=True))
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
        ("support", "0005_agent_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
