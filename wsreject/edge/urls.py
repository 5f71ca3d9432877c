"""Mount with ``path("wsreject/edge/", include("wsreject.edge.urls"))`` (see docs/edge.md)."""

from __future__ import annotations

from django.urls import path

from . import views

__all__ = ["app_name", "urlpatterns"]

app_name = "wsreject_edge"

urlpatterns = [
    path("auth/", views.forward_auth, name="auth"),
    path("auth/nginx/", views.forward_auth_nginx, name="auth_nginx"),
    path("denial/", views.render_denial, name="denial"),
]
