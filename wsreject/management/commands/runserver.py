"""``manage.py runserver`` on Daphne, serving WebSocket denial responses.

Django runs the ``runserver`` of the first installed app that has one, so list
``"wsreject"`` before ``"daphne"`` (itself before ``django.contrib.staticfiles``) in
``INSTALLED_APPS``; check ``wsreject.W010`` reports the wrong order.
"""

from daphne.management.commands.runserver import Command as DaphneRunserverCommand

from wsreject.daphne.server import DenialServer


class Command(DaphneRunserverCommand):
    help = "Starts a Daphne development server whose WebSocket handshakes can be denied with HTTP responses."
    server_cls = DenialServer
