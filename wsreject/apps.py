from django.apps import AppConfig
from django.core import checks


class WSRejectConfig(AppConfig):
    name = "wsreject"
    verbose_name = "WebSocket access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks as wsreject_checks
        from .daphne.checks import check_daphne_order

        checks.register(wsreject_checks.check_settings)
        checks.register(wsreject_checks.check_asgi_stack)
        checks.register(check_daphne_order)
