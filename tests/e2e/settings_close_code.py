"""The demo's settings with ``WSREJECT["FALLBACK"] = "close_code"``: on a server without the
denial extension (stock Daphne) every denial is accepted, sent as one ``{"detail": ...}``
frame and closed with ``4000 + status`` and the detail as reason."""

from project.settings import *

WSREJECT = {**WSREJECT, "FALLBACK": "close_code"}
