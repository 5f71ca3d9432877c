from django.apps import AppConfig
from django.core import checks

__all__ = ["WSRejectConfig"]


class WSRejectConfig(AppConfig):
    name = "wsreject"
    verbose_name = "WebSocket access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks as core_checks
        from . import revocation
        from .access import checks as access_checks
        from .access.declared_perms import create_declared_permissions
        from .access.denial_log import connect_denial_log
        from .cache.invalidation import connect_receivers
        from .daphne.checks import check_daphne_order
        from .isolation import connect_isolation
        from .layer_checks import check_channel_layers
        from .metrics import connect_revocations

        checks.register(core_checks.check_settings)
        checks.register(core_checks.check_authenticator_requirements)
        checks.register(core_checks.check_deploy_origins, deploy=True)
        checks.register(core_checks.check_asgi_stack)
        checks.register(check_daphne_order)
        checks.register(check_channel_layers)
        checks.register(access_checks.check_access_control)
        connect_receivers()
        revocation.install()
        connect_denial_log()
        connect_revocations()
        connect_isolation()
        post_migrate.connect(create_declared_permissions, sender=self, dispatch_uid="wsreject.declared_perms")
