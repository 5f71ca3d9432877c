from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from project.chat.views import index
from wsreject.access.drf import WebSocketTicketView
from wsreject.metrics import metrics_view

urlpatterns = [
    path("", index, name="index"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/ws-ticket/", WebSocketTicketView.as_view(), name="ws_ticket"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    # Forward auth for nginx/Caddy in front (docs/edge.md); answers WSREJECT_EDGE["TRUSTED_PROXIES"] only.
    path("wsreject/edge/", include("wsreject.edge.urls")),
]
