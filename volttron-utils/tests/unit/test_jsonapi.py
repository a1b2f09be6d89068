"""JSON wrappers: the platform's separators, bytes input, and one error type for bad input."""

from __future__ import annotations

import io

import pytest

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
