"""Knowledge admins watch, start and cancel runs of specialising the retriever (issue 14)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen: the permissions this migration adds to (and its reverse removes from) the group.
KNOWLEDGE_PERMISSIONS = ("view_specialiserun", "change_specialiserun")
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
    dependencies = [("support", "0014_specialise")]

    operations = [migrations.RunPython(grant, revoke)]
