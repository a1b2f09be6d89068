"""JSON wrappers: the platform's separators, bytes input, one error type for bad input, and the fast
paths (:func:`jsonapi.encode`, :func:`jsonapi.decode`) answering exactly as the stdlib does."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volttron.utils import jsonapi
from volttron.utils.errors import JsonDecodeError, VolttronError


def test_dumps_uses_default_separators_and_ascii() -> None:
    assert jsonapi.dumps({"a": [1, 2], "b": "\u00e9"}) == '{"a": [1, 2], "b": "\\u00e9"}'
    assert jsonapi.dumps({"a": 1}, separators=(",", ":")) == '{"a":1}'
    assert jsonapi.dumpb(["x"]) == b'["x"]'


@pytest.mark.parametrize("data", ['{"a": [1, 2.5, null, true]}', b'{"a": [1, 2.5, null, true]}',
                                  bytearray(b'{"a": [1, 2.5, null, true]}'),
                                  memoryview(b'{"a": [1, 2.5, null, true]}')])
def test_loads_text_and_bytes(data) -> None:
    assert jsonapi.loads(data) == {"a": [1, 2.5, None, True]}
    assert jsonapi.loadb(data) == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize("data", ["", "{", "{'single': 1}", "[1,]", b"\xff\xfe", "[" * 100000, None, 42])
def test_loads_bad_input_is_a_value_error(data) -> None:
    with pytest.raises(JsonDecodeError) as info:
        jsonapi.loads(data)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, VolttronError)


def test_file_helpers() -> None:
    buffer = io.StringIO()
    jsonapi.dump({"k": "v"}, buffer)
    buffer.seek(0)
    assert jsonapi.load(buffer) == {"k": "v"}
    assert jsonapi.load(io.BytesIO(b"[1]")) == [1]
    with pytest.raises(JsonDecodeError):
        jsonapi.load(io.StringIO("nope"))


# -- encode/decode: the stdlib's answers and errors, faster -------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def test_the_fast_paths_are_in_use_here() -> None:
    # CPython with its C accelerator (every supported Python): otherwise only the stdlib runs
    assert jsonapi._ENCODE is not None and jsonapi._SCAN is not None


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_encode_and_decode_answer_as_the_stdlib(value) -> None:
    text = json.dumps(value)
    assert jsonapi.encode(value) == text
    assert jsonapi.decode(text) == json.loads(text)
    assert jsonapi.dumps(value) == text and jsonapi.loads(text) == json.loads(text)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "caf\u00e9\n",
                                   {1: "a", None: 2.5}, {"k": (1, 2)}, 10**40, ""])
def test_encode_edge_values(value) -> None:
    assert jsonapi.encode(value) == json.dumps(value)


def errors_of(call, *args):
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 - the point is to compare whatever is raised
        return type(exc), str(exc)
    return None


def test_encode_raises_what_the_stdlib_raises() -> None:
    circular: list = []
    circular.append(circular)
    assert errors_of(jsonapi.encode, circular) == errors_of(json.dumps, circular) == (
        ValueError, "Circular reference detected")
    assert errors_of(jsonapi.encode, {"x": object()}) == errors_of(json.dumps, {"x": object()}) == (
        TypeError, "Object of type object is not JSON serializable")
    assert errors_of(jsonapi.encode, {"x": {1, 2}})[0] is TypeError
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert errors_of(jsonapi.encode, deep)[0] is errors_of(json.dumps, deep)[0] is RecursionError


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "[1] x", "{'a': 1}", '"unterminated', "nul", "-",
                                  "[1, 2", " [1]", "[1] ", "\n{}\n", "NaN", "-Infinity", "1e999", '"\\ud800"',
                                  "[" * 100_000])
def test_decode_answers_and_fails_as_the_stdlib(text) -> None:
    assert errors_of(jsonapi.decode, text) == errors_of(json.loads, text)
    if errors_of(json.loads, text) is None:
        expected = json.loads(text)
        got = jsonapi.decode(text)
        assert repr(got) == repr(expected)


def test_without_the_c_accelerator_the_stdlib_does_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonapi, "_ENCODE", None)
    monkeypatch.setattr(jsonapi, "_SCAN", None)
    assert jsonapi.encode({"a": [1]}) == '{"a": [1]}'
    assert jsonapi.decode('{"a": [1]}') == {"a": [1]}
    with pytest.raises(json.JSONDecodeError):
        jsonapi.decode("[1,]")
