"""Create the two roles as groups: viewer (read everything) and operator (also every write and operation)."""

from django.db import migrations

ROLE_APPS = ("deckies", "topology", "lifecycle")


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    in_scope = Permission.objects.filter(content_type__app_label__in=ROLE_APPS)
    viewer, _ = Group.objects.get_or_create(name="viewer")
    viewer.permissions.set(in_scope.filter(codename__startswith="view_"))
    operator, _ = Group.objects.get_or_create(name="operator")
    operator.permissions.set(in_scope)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "operator"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("deckies", "0002_initial"),
        ("topology", "0001_initial"),
        ("lifecycle", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
