from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@ensure_csrf_cookie  # the page's script POSTs to /api/ws-ticket/ with the CSRF token
def index(request):
    """A page that opens the scenario's sockets from a browser and shows what script can see."""
    return render(request, "chat/index.html")
