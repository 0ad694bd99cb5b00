"""Create the "Support agents" and "Knowledge admins" groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of support.roles.ROLE_PERMISSIONS at the time of this migration.
ROLE_PERMISSIONS = {
    "Support agents": (
        "view_conversation", "change_conversation",
        "view_message", "add_message",
        "view_escalation", "change_escalation",
        "view_feedback",
        "view_knowledgedocument", "view_chunk",
    ),
    "Knowledge admins": (
        "view_knowledgedocument", "add_knowledgedocument", "change_knowledgedocument",
        "delete_knowledgedocument",
        "view_chunk",
    ),
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="support", codename__in=codenames)
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"Permissions missing for {name}: {sorted(missing)}")
        group.permissions.set(perms)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
