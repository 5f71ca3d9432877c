"""wsreject.E030: channels-redis with a redis-py whose socket timeout is not above the blocking receive."""

from __future__ import annotations

import io

import pytest
from channels_redis.core import RedisChannelLayer
from django.core.management import CommandError, call_command
from django.test import override_settings

from wsreject.layer_checks import check_channel_layers, default_socket_timeout

URL = "redis://127.0.0.1:6379/9"  # never connected to: the check reads the configuration only
REDIS_LAYER = "channels_redis.core.RedisChannelLayer"


def layers(hosts, backend=REDIS_LAYER):
    return {"default": {"BACKEND": backend, "CONFIG": {"hosts": hosts}}}


def ids_for(channel_layers):
    with override_settings(CHANNEL_LAYERS=channel_layers):
        return [message.id for message in check_channel_layers()]


def test_installed_redis_py_has_the_trap_by_default():
    # The premise of the check on the pinned versions: redis-py 8 reads with 5 s, the layer blocks 5 s.
    assert default_socket_timeout() == 5
    assert RedisChannelLayer.brpop_timeout == 5


@pytest.mark.parametrize(
    "hosts",
    [
        pytest.param([URL], id="url-default"),
        pytest.param([{"address": URL}], id="address-default"),
        pytest.param([("127.0.0.1", 6379)], id="tuple-default"),
        pytest.param([{"address": URL, "socket_timeout": 5}], id="equal"),
        pytest.param([{"address": URL, "socket_timeout": 2.5}], id="below"),
        pytest.param([{"address": URL + "?socket_timeout=5", "socket_timeout": 10}], id="url-option-wins"),
        pytest.param(None, id="no-hosts"),
    ],
)
def test_trap_is_an_error_with_the_fix(hosts):
    with override_settings(CHANNEL_LAYERS=layers(hosts)):
        messages = check_channel_layers()
    assert [message.id for message in messages] == ["wsreject.E030"]
    assert "1011" in messages[0].msg and "5 s" in messages[0].msg
    assert '"socket_timeout": 10' in messages[0].hint


def test_each_trapped_host_is_reported():
    assert ids_for(layers([{"address": URL, "socket_timeout": 10}, URL, ("127.0.0.1", 6380)])) == ["wsreject.E030"] * 2


@pytest.mark.parametrize(
    "hosts",
    [
        pytest.param([{"address": URL, "socket_timeout": 10}], id="address-kwarg"),
        pytest.param([URL + "?socket_timeout=10"], id="url-option"),
        pytest.param([{"host": "127.0.0.1", "port": 6379, "socket_timeout": 5.5}], id="host-kwargs"),
        pytest.param([{"address": URL, "socket_timeout": None}], id="no-timeout"),
        pytest.param([{"address": URL + "?socket_timeout=10", "socket_timeout": 1}], id="url-option-wins"),
    ],
)
def test_fixed_is_silent(hosts):
    assert ids_for(layers(hosts)) == []


def test_a_subclass_with_a_shorter_receive_is_judged_by_its_own_timeout():
    assert ids_for(layers([{"address": URL, "socket_timeout": 3}], backend="tests.core.test_layer_checks.QuickLayer")) == []


class QuickLayer(RedisChannelLayer):
    brpop_timeout = 2


@pytest.mark.parametrize(
    "channel_layers",
    [
        pytest.param({"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}, id="in-memory"),
        pytest.param(layers([URL], backend="channels_redis.pubsub.RedisPubSubChannelLayer"), id="pubsub"),
        pytest.param({}, id="none"),
        pytest.param({"default": {"BACKEND": "no.such.Layer"}}, id="unimportable"),
        pytest.param(layers(URL), id="hosts-a-string"),  # channels-redis refuses it itself
    ],
)
def test_not_channels_redis_is_silent(channel_layers):
    assert ids_for(channel_layers) == []


def test_manage_py_check_fails_on_the_trap_and_passes_fixed():
    with override_settings(CHANNEL_LAYERS=layers([URL])):
        with pytest.raises(CommandError, match="wsreject.E030"):
            call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    with override_settings(CHANNEL_LAYERS=layers([{"address": URL, "socket_timeout": 10}])):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_demo_production_profile_is_fixed(monkeypatch):
    import importlib

    import project.settings

    monkeypatch.setenv("REDIS_URL", URL)
    production = importlib.reload(project.settings)
    try:
        assert production.CHANNEL_LAYERS["default"]["BACKEND"] == REDIS_LAYER
        assert ids_for(production.CHANNEL_LAYERS) == []
    finally:
        monkeypatch.delenv("REDIS_URL")
        importlib.reload(project.settings)
