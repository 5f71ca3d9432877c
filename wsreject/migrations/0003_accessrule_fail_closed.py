"""Access rules keep naming deleted groups and permissions (so they admit nobody), and the
database refuses invalid rules.

The automatic many-to-many tables become explicit ``AccessRuleGroup`` /
``AccessRulePermission`` rows whose group or permission is set to NULL, not
deleted, when the group or permission is; existing links are copied over.
"""

import django.db.models.deletion
from django.db import migrations, models


def copy_links(apps, schema_editor):
    AccessRule = apps.get_model("wsreject", "AccessRule")
    AccessRuleGroup = apps.get_model("wsreject", "AccessRuleGroup")
    AccessRulePermission = apps.get_model("wsreject", "AccessRulePermission")
    db = schema_editor.connection.alias
    for rule in AccessRule.objects.using(db).all():
        AccessRuleGroup.objects.using(db).bulk_create(
            AccessRuleGroup(rule_id=rule.pk, group_id=group.pk, group_name=group.name) for group in rule.groups.all()
        )
        AccessRulePermission.objects.using(db).bulk_create(
            AccessRulePermission(
                rule_id=rule.pk,
                permission_id=perm.pk,
                permission_label=f"{perm.content_type.app_label}.{perm.codename}",
            )
            for perm in rule.permissions.select_related("content_type")
        )


def copy_links_back(apps, schema_editor):
    AccessRuleGroup = apps.get_model("wsreject", "AccessRuleGroup")
    AccessRulePermission = apps.get_model("wsreject", "AccessRulePermission")
    db = schema_editor.connection.alias
    for link in AccessRuleGroup.objects.using(db).exclude(group=None):
        link.rule.groups.add(link.group_id)
    for link in AccessRulePermission.objects.using(db).exclude(permission=None):
        link.rule.permissions.add(link.permission_id)


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("wsreject", "0002_accessrule"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccessRuleGroup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("group_name", models.CharField(blank=True, max_length=150, verbose_name="group name when deleted")),
                ("group", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="auth.group")),
                ("rule", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="group_links", to="wsreject.accessrule")),
            ],
            options={"verbose_name": "allowed group"},
        ),
        migrations.CreateModel(
            name="AccessRulePermission",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("permission_label", models.CharField(blank=True, max_length=255, verbose_name="permission when deleted")),
                ("permission", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="auth.permission")),
                ("rule", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="permission_links", to="wsreject.accessrule")),
            ],
            options={"verbose_name": "required permission"},
        ),
        migrations.RunPython(copy_links, copy_links_back),
        migrations.RemoveField(model_name="accessrule", name="groups"),
        migrations.RemoveField(model_name="accessrule", name="permissions"),
        migrations.AddField(
            model_name="accessrule",
            name="groups",
            field=models.ManyToManyField(
                blank=True,
                related_name="wsreject_access_rules",
                through="wsreject.AccessRuleGroup",
                to="auth.group",
                verbose_name="allowed groups",
            ),
        ),
        migrations.AddField(
            model_name="accessrule",
            name="permissions",
            field=models.ManyToManyField(
                blank=True,
                related_name="wsreject_access_rules",
                through="wsreject.AccessRulePermission",
                to="auth.permission",
                verbose_name="required permissions",
            ),
        ),
        migrations.AddConstraint(
            model_name="accessrulegroup",
            constraint=models.UniqueConstraint(fields=("rule", "group"), name="wsreject_accessrulegroup_unique"),
        ),
        migrations.AddConstraint(
            model_name="accessrulepermission",
            constraint=models.UniqueConstraint(fields=("rule", "permission"), name="wsreject_accessrulepermission_unique"),
        ),
        migrations.AddConstraint(
            model_name="accessrule",
            constraint=models.CheckConstraint(
                condition=models.Q(("deny_status__gte", 400), ("deny_status__lte", 599)) & ~models.Q(("deny_status", 401)),
                name="wsreject_accessrule_deny_status_is_an_error",
            ),
        ),
        migrations.AddConstraint(
            model_name="accessrule",
            constraint=models.CheckConstraint(condition=~models.Q(("endpoint", "")), name="wsreject_accessrule_endpoint_not_empty"),
        ),
        migrations.AddConstraint(
            model_name="accessrule",
            constraint=models.CheckConstraint(
                condition=models.Q(("retry_after__gte", 0), ("retry_after__lte", 86400)),
                name="wsreject_accessrule_retry_after_in_range",
            ),
        ),
    ]
