"""A DRF token class with a model of the project's own (so it needs no ``rest_framework.authtoken``)."""

from __future__ import annotations

from django.contrib.auth.models import Group
from rest_framework.authentication import TokenAuthentication


class OwnModelTokens(TokenAuthentication):
    model = Group  # any model: only its presence matters to the check
