from django.shortcuts import render


def index(request):
    """A page that opens the scenario's sockets from a browser and shows what script can see."""
    return render(request, "chat/index.html")
