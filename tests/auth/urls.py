"""The demo's URLs plus wsreject's plain Django ticket view (session + CSRF), for the ticket tests."""

from django.urls import path

from project.urls import urlpatterns as demo_urlpatterns
from wsreject.access.views import ws_ticket

urlpatterns = [
    path("session/ws-ticket/", ws_ticket, name="session_ws_ticket"),
    *demo_urlpatterns,
]
