"""JSON-RPC building and parsing as VIP carries it (reference §2.5)."""

from __future__ import annotations

import json

import pytest

from volttron.utils import jsonrpc
from volttron.utils.errors import VolttronError


def test_request_matches_worked_example_byte_for_byte() -> None:
    request = jsonrpc.json_method("1716400000.000000.8795093022353.000000", "add", [1, 2], {})
    assert json.dumps(request) == (
        '{"jsonrpc": "2.0", "method": "add", "params": [1, 2], '
        '"id": "1716400000.000000.8795093022353.000000"}'
    )


def test_response_matches_worked_example_byte_for_byte() -> None:
    assert json.dumps(jsonrpc.json_result("7.1", 3)) == '{"jsonrpc": "2.0", "id": "7.1", "result": 3}'


@pytest.mark.parametrize(
    "args,kwargs,params",
    [
        ((1, 2), {}, [1, 2]),
        ((), {"a": 1}, {"a": 1}),
        ((1,), {"a": 1}, {"*args": [1], "**kwargs": {"a": 1}}),
        ((), {}, None),
    ],
)
def test_params_encoding_rules(args, kwargs, params) -> None:
    assert jsonrpc.encode_params(args, kwargs) == params
    request = jsonrpc.json_method("1", "m", args, kwargs)
    if params is None:
        assert "params" not in request
    else:
        assert request["params"] == params
    assert jsonrpc.decode_params(request.get("params")) == (list(args), kwargs)


def test_notification_has_no_id() -> None:
    request = jsonrpc.json_method(None, "m", [1])
    assert "id" not in request
    assert jsonrpc.parse_request(request).is_notification


@pytest.mark.parametrize(
    "params", [{"*args": 1}, {"*args": [], "**kwargs": [], "x": 1}, {"*args": [], "x": 1}, 5, "text"]
)
def test_bad_params_are_invalid_params(params) -> None:
    with pytest.raises(jsonrpc.Error) as info:
        jsonrpc.decode_params(params)
    assert info.value.code == jsonrpc.INVALID_PARAMS


@pytest.mark.parametrize(
    "obj", [[], {"method": "x"}, {"jsonrpc": "1.0", "method": "x"}, {"jsonrpc": "2.0", "method": ""}]
)
def test_bad_requests_are_invalid_request(obj) -> None:
    with pytest.raises(jsonrpc.Error) as info:
        jsonrpc.parse_request(obj)
    assert info.value.code == jsonrpc.INVALID_REQUEST


def test_error_response_layout_and_omitted_data() -> None:
    assert jsonrpc.json_error("1", -32601, "unimplemented method") == {
        "jsonrpc": "2.0",
        "id": "1",
        "error": {"code": -32601, "message": "unimplemented method"},
    }
    detail = "method 'x' is not implemented"
    with_data = jsonrpc.json_error("1", -32601, "unimplemented method", detail=detail)
    assert with_data["error"]["data"] == {"detail": "method 'x' is not implemented"}


def test_method_not_found_maps_to_its_class() -> None:
    response = jsonrpc.parse_response(
        jsonrpc.json_error("1", jsonrpc.METHOD_NOT_FOUND, "unimplemented method", detail="no x")
    )
    assert isinstance(response.error, jsonrpc.MethodNotFound)
    assert isinstance(response.error, VolttronError)
    assert "no x" in str(response.error)


def test_unauthorized_and_other_codes() -> None:
    unauthorized = jsonrpc.exception_from_json(jsonrpc.UNAUTHORIZED, "unauthorized", {"detail": "d"})
    assert isinstance(unauthorized, jsonrpc.Unauthorized)
    other = jsonrpc.exception_from_json(-32005, "unavailable platform")
    assert type(other) is jsonrpc.Error and other.code == -32005


def _raise_and_encode(exc: BaseException, include_tb: bool = True) -> dict:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - the test encodes whatever it raised
        return jsonrpc.exception_to_json("9", caught, include_tb)


def test_builtin_remote_exception_is_both_remote_error_and_builtin() -> None:
    response = jsonrpc.parse_response(_raise_and_encode(ValueError("bad value", 3)))
    error = response.error
    assert isinstance(error, jsonrpc.RemoteError) and isinstance(error, ValueError)
    assert error.exc_type == "builtins.ValueError"
    assert error.exc_args == ["bad value", 3]
    assert "Traceback" in error.exc_info["exc_tb"]
    assert error.code == jsonrpc.UNHANDLED_EXCEPTION
    with pytest.raises(ValueError):
        raise error


class CustomProblem(Exception):
    pass


def test_unknown_remote_exception_is_plain_remote_error() -> None:
    encoded = _raise_and_encode(CustomProblem(object()), include_tb=False)
    info = encoded["error"]["data"]["exception.py"]
    assert "exc_tb" not in info
    assert info["exc_type"].endswith("CustomProblem")
    assert isinstance(info["exc_args"][0], str)  # not JSON: sent as its repr
    error = jsonrpc.parse_response(encoded).error
    assert type(error) is jsonrpc.RemoteError
    assert not isinstance(error, (ValueError, TypeError, KeyError))


def test_remote_error_never_instantiates_arbitrary_classes() -> None:
    error = jsonrpc.remote_error("m", {"exc_type": "os.system", "exc_args": ["rm -rf /"]})
    assert type(error) is jsonrpc.RemoteError


def test_error_exception_round_trips_its_code() -> None:
    encoded = _raise_and_encode(jsonrpc.Error(jsonrpc.UNAUTHORIZED, "unauthorized", {"detail": "no cap"}))
    assert encoded["error"] == {"code": -32001, "message": "unauthorized", "data": {"detail": "no cap"}}


@pytest.mark.parametrize(
    "obj", [{"id": "1"}, {"id": "1", "result": 1, "error": {}}, {"id": "1", "error": {"code": "x"}}, []]
)
def test_malformed_responses_raise(obj) -> None:
    with pytest.raises(jsonrpc.Error):
        jsonrpc.parse_response(obj)


def test_is_response_distinguishes_requests() -> None:
    assert jsonrpc.is_response({"id": "1", "result": None})
    assert not jsonrpc.is_response({"jsonrpc": "2.0", "method": "m", "id": "1"})
    assert not jsonrpc.is_response([1])
