"""Telling the 9.x and 10.x forms of set_config/delete_config apart by their arguments."""

from __future__ import annotations

import pytest

from volttron.server.services.config_store import agent as rpc
from volttron.server.services.config_store.configs import InvalidConfigError


@pytest.mark.parametrize(("args", "kwargs", "is_9x"), [
    (("config", {"a": 1}), {}, False),
    (("config", "raw text"), {}, False),
    (("config", [1], True), {}, False),
    (("config", [1]), {"trigger_callback": True, "send_update": False}, False),
    ((), {"config_name": "config", "contents": "x"}, False),
    (("listener", "config", '{"a": 1}'), {}, True),
    (("listener", "config", '{"a": 1}', "json"), {}, True),
    (("listener", "config"), {"raw_contents": "x"}, True),
    ((), {"identity": "listener", "config_name": "c", "raw_contents": "x"}, True),
    (("listener", "config", "x"), {"config_type": "raw", "trigger_callback": False}, True),
])
def test_set_config_forms(args: tuple, kwargs: dict, is_9x: bool) -> None:
    assert rpc._is_9x_set(args, kwargs) is is_9x
    signature = rpc._set_config_9x if is_9x else rpc._set_config_10x
    bound = rpc._bind(signature, args, kwargs)
    assert bound["config_name"] in ("config", "c")
    assert {"trigger_callback", "send_update"} <= set(bound)


@pytest.mark.parametrize(("args", "kwargs", "is_9x"), [
    (("config",), {}, False),
    (("config", True), {}, False),
    ((), {"config_name": "config"}, False),
    (("config",), {"trigger_callback": True}, False),
    (("listener", "config"), {}, True),
    (("listener",), {"config_name": "config"}, True),
    ((), {"identity": "listener", "config_name": "config"}, True),
])
def test_delete_config_forms(args: tuple, kwargs: dict, is_9x: bool) -> None:
    assert rpc._is_9x_delete(args, kwargs) is is_9x
    signature = rpc._delete_config_9x if is_9x else rpc._delete_config_10x
    assert rpc._bind(signature, args, kwargs)["config_name"] == "config"


def test_defaults_differ_between_the_forms() -> None:
    assert rpc._bind(rpc._set_config_10x, ("c", "x"), {})["trigger_callback"] is False
    assert rpc._bind(rpc._set_config_9x, ("i", "c", "x"), {})["trigger_callback"] is True
    assert rpc._bind(rpc._set_config_9x, ("i", "c", "x"), {})["config_type"] == "raw"


def test_wrong_arguments_are_a_clear_error() -> None:
    with pytest.raises(InvalidConfigError, match="set_config: missing a required argument: 'contents'"):
        rpc._bind(rpc._set_config_10x, ("config",), {})
    with pytest.raises(InvalidConfigError, match="delete_config: got an unexpected keyword argument 'x'"):
        rpc._bind(rpc._delete_config_10x, ("config",), {"x": 1})
