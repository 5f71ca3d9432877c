"""A generated routing under wsreject, served by real servers (``tests.routing.sample_app:application``).

``WSREJECT_ROUTING_SAMPLE_SEED`` picks the routing (:func:`tests.routing.generate.random_spec`);
the test builds the same one in process to know where plain Channels sends each spelling.
"""

from __future__ import annotations

import os
import random

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from .generate import build, random_spec  # noqa: E402

SPEC = random_spec(random.Random(int(os.environ.get("WSREJECT_ROUTING_SAMPLE_SEED", "1"))))
application = ProtocolTypeRouter({"http": django_application, "websocket": build(SPEC, wsreject=True)})
