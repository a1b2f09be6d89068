"""The error tree: one root, and the ValueError compatibility callers rely on."""

from __future__ import annotations

import inspect

import pytest

from volttron.utils import errors
from volttron.utils.errors import (
    CertificateError,
    ConfigError,
    CorruptFileError,
    FrameError,
    IdentityError,
    JsonDecodeError,
    KeyFormatError,
    VolttronError,
)


def test_every_error_has_the_single_root() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, VolttronError), cls
        assert cls.__doc__, cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the hierarchy drawing"


@pytest.mark.parametrize("cls", [ConfigError, KeyFormatError, FrameError, JsonDecodeError, IdentityError])
def test_value_errors(cls: type[Exception]) -> None:
    assert issubclass(cls, ValueError)
    with pytest.raises(ValueError, match="bad"):
        raise cls("bad")


def test_certificate_error_is_not_a_value_error() -> None:
    assert not issubclass(CertificateError, ValueError)


def test_corrupt_file_error_carries_paths() -> None:
    err = CorruptFileError("auth.json is broken", path="/h/auth.json", kept_as="/h/auth.json.corrupt-x")
    assert str(err) == "auth.json is broken"
    assert (err.path, err.kept_as) == ("/h/auth.json", "/h/auth.json.corrupt-x")
    assert CorruptFileError("m", path="p").kept_as is None
