"""JSON-RPC 2.0 as VIP carries it (docs/protocol.md §2.5, §9.18).

Requests, responses and errors are plain dicts built here and serialised by the caller with
``json.dumps`` (default separators), in the key order the original platform used::

    {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "..."}
    {"jsonrpc": "2.0", "id": "...", "result": 3}
    {"jsonrpc": "2.0", "id": "...", "error": {"code": -32601, "message": "...", "data": {...}}}

``params`` follows VOLTTRON's convention: positional arguments only -> a list, keyword arguments
only -> an object, both -> ``{"*args": [...], "**kwargs": {...}}``, none -> omitted.

Errors a caller can read, under the one root::

    VolttronError
     +-- Error                  a JSON-RPC error response (``code``, ``message``, ``data``)
          +-- MethodNotFound    -32601: the peer exports no such method
          +-- Unauthorized      -32001: the caller lacks a capability the method requires
          +-- RemoteError       -32000: the method raised; ``exc_info`` describes the exception

A :class:`RemoteError` is never unpickled. When the remote exception type is one of a few plain
builtin exceptions (``ValueError``, ``KeyError``...), the raised object is an instance of a class
deriving from both :class:`RemoteError` and that builtin, so ``except ValueError`` and
``except RemoteError`` both catch it.
"""

from __future__ import annotations

import builtins
import functools
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from volttron.utils.errors import VolttronError

VERSION = "2.0"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNHANDLED_EXCEPTION = -32000
UNAUTHORIZED = -32001
UNABLE_TO_REGISTER_INSTANCE = -32002
DISCOVERY_ERROR = -32003
UNABLE_TO_UNREGISTER_INSTANCE = -32004
UNAVAILABLE_PLATFORM = -32005
UNAVAILABLE_AGENT = -32006

ARGS_KEY = "*args"
KWARGS_KEY = "**kwargs"
_PARAM_KEYS = frozenset({ARGS_KEY, KWARGS_KEY})

# Remote exception types re-raised as (RemoteError + builtin). Plain value/lookup errors only:
# nothing whose constructor has side effects or whose meaning depends on local state.
REMOTE_BUILTINS = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "FileExistsError",
        "FileNotFoundError",
        "IndexError",
        "KeyError",
        "LookupError",
        "NotImplementedError",
        "OverflowError",
        "PermissionError",
        "RuntimeError",
        "TimeoutError",
        "TypeError",
        "UnicodeError",
        "ValueError",
        "ZeroDivisionError",
    }
)


class Error(VolttronError):
    """A JSON-RPC error response received from a peer (or raised to produce one)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        detail = self.data.get("detail") if isinstance(self.data, Mapping) else None
        text = f"{self.message} ({self.code})"
        return f"{text}: {detail}" if detail else text

    def to_json(self, ident: Any) -> dict[str, Any]:
        """The error response for request ``ident``."""
        data = dict(self.data) if isinstance(self.data, Mapping) else {}
        return json_error(ident, self.code, self.message, **data)


class MethodNotFound(Error):
    """The peer does not export the method that was called."""


class Unauthorized(Error):
    """The caller does not hold a capability the method requires."""


class ExcInfo(TypedDict):
    """:attr:`RemoteError.exc_info`: the remote exception as sent."""

    exc_type: str | None
    exc_args: list[Any]
    exc_tb: str | None


class RemoteError(Error):
    """An exception raised by the method on the far side.

    ``exc_info`` is ``{"exc_type": "module.Class", "exc_args": [...], "exc_tb": "..."}`` as sent;
    nothing in it is evaluated.
    """

    def __init__(
        self,
        message: str,
        exc_type: str | None = None,
        exc_args: Sequence[Any] | None = None,
        exc_tb: str | None = None,
        detail: str | None = None,
    ) -> None:
        data = {"detail": detail if detail is not None else message}
        super().__init__(UNHANDLED_EXCEPTION, message, data)
        self.args = (message,) if exc_args is None else tuple(exc_args)
        self.detail = data["detail"]
        self.exc_info: ExcInfo = {"exc_type": exc_type, "exc_args": list(exc_args or []), "exc_tb": exc_tb}

    @property
    def exc_type(self) -> str | None:
        """The dotted name of the remote exception class."""
        return self.exc_info["exc_type"]

    @property
    def exc_args(self) -> list[Any]:
        """The remote exception's arguments (JSON values)."""
        return self.exc_info["exc_args"]

    def __str__(self) -> str:
        return f"{self.exc_type or 'remote error'}: {self.detail}"

    def print_tb(self, file: Any = None) -> None:
        """Write the remote traceback, when the peer sent one."""
        import sys

        (file or sys.stderr).write(self.exc_info.get("exc_tb") or "no remote traceback\n")


@functools.cache
def _remote_class(builtin_name: str) -> type[RemoteError]:
    base = getattr(builtins, builtin_name)
    return type(f"Remote{builtin_name}", (RemoteError, base), {"__module__": __name__})


def remote_error(message: str, exc_info: Mapping[str, Any] | None = None, detail: str | None = None) -> Error:
    """The exception to raise for an UNHANDLED_EXCEPTION response (see the module docstring)."""
    exc_info = exc_info or {}
    exc_type = exc_info.get("exc_type")
    exc_args = exc_info.get("exc_args")
    if not isinstance(exc_args, list):
        exc_args = [] if exc_args is None else [exc_args]
    exc_tb = exc_info.get("exc_tb")
    cls: type[RemoteError] = RemoteError
    if isinstance(exc_type, str):
        module, _, name = exc_type.rpartition(".")
        if module in ("builtins", "exceptions", "") and name in REMOTE_BUILTINS:
            cls = _remote_class(name)
    return cls(message, exc_type, exc_args, exc_tb if isinstance(exc_tb, str) else None, detail)


def exception_from_json(code: int, message: str, data: Any = None) -> Error:
    """The exception a caller raises for an error response: RemoteError, MethodNotFound or Error."""
    if code == UNHANDLED_EXCEPTION and isinstance(data, Mapping):
        exc_info = data.get("exception.py")
        if isinstance(exc_info, Mapping):
            return remote_error(message, exc_info, data.get("detail"))
    if code == METHOD_NOT_FOUND:
        return MethodNotFound(code, message, data)
    if code == UNAUTHORIZED:
        return Unauthorized(code, message, data)
    return Error(code, message, data)


def exception_to_json(ident: Any, exc: BaseException, include_tb: bool = True) -> dict[str, Any]:
    """The UNHANDLED_EXCEPTION error response describing ``exc``."""
    if isinstance(exc, Error) and not isinstance(exc, RemoteError):
        return exc.to_json(ident)
    exc_type = type(exc)
    info: dict[str, Any] = {
        "exc_type": f"{exc_type.__module__}.{exc_type.__qualname__}",
        "exc_args": [_jsonable(a) for a in exc.args],
    }
    if include_tb:
        info["exc_tb"] = "".join(traceback.format_exception(exc_type, exc, exc.__traceback__))
    data = {"detail": str(exc), "exception.py": info}
    return json_error(ident, UNHANDLED_EXCEPTION, "unhandled exception", **data)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def encode_params(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any] | dict[str, Any] | None:
    """``params`` for positional and keyword arguments (VOLTTRON's convention)."""
    if args and kwargs:
        return {ARGS_KEY: list(args), KWARGS_KEY: dict(kwargs)}
    if kwargs:
        return dict(kwargs)
    if args:
        return list(args)
    return None


def decode_params(params: Any) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from ``params``; raises :class:`Error` (INVALID_PARAMS) on anything else."""
    if params is None:
        return [], {}
    if isinstance(params, list):
        return params, {}
    if isinstance(params, dict):
        if ARGS_KEY in params or KWARGS_KEY in params:
            args = params.get(ARGS_KEY, [])
            kwargs = params.get(KWARGS_KEY, {})
            if isinstance(args, list) and isinstance(kwargs, dict) and params.keys() <= _PARAM_KEYS:
                return args, kwargs
            raise Error(INVALID_PARAMS, "invalid params", {"detail": "malformed *args/**kwargs params"})
        return [], params
    raise Error(INVALID_PARAMS, "invalid params", {"detail": "params must be an array or an object"})


def json_method(
    ident: Any, method: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A request (``ident`` not None) or a notification (``ident`` None)."""
    request: dict[str, Any] = {"jsonrpc": VERSION, "method": method}
    params = encode_params(args, kwargs or {})
    if params is not None:
        request["params"] = params
    if ident is not None:
        request["id"] = ident
    return request


def json_result(ident: Any, result: Any) -> dict[str, Any]:
    """A success response."""
    return {"jsonrpc": VERSION, "id": ident, "result": result}


def json_error(ident: Any, code: int, message: str, **data: Any) -> dict[str, Any]:
    """An error response; ``data`` is included only when given."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    return {"jsonrpc": VERSION, "id": ident, "error": error}


class Request(NamedTuple):
    """A parsed request; ``ident`` is None for a notification.

    A named tuple rather than a frozen dataclass: every served request makes one, and a frozen
    dataclass sets each field through ``object.__setattr__``.
    """

    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    ident: Any = None

    @property
    def is_notification(self) -> bool:
        """True when no response is expected."""
        return self.ident is None


@dataclass(frozen=True)
class Response:
    """A parsed response: ``error`` is None on success."""

    ident: Any
    result: Any = None
    error: Error | None = None


def parse_request(obj: Any) -> Request:
    """Validate one request object; raises :class:`Error` with INVALID_REQUEST / INVALID_PARAMS."""
    if not isinstance(obj, dict):
        raise Error(INVALID_REQUEST, "invalid request", {"detail": "request must be an object"})
    if obj.get("jsonrpc") != VERSION:
        raise Error(INVALID_REQUEST, "invalid request", {"detail": "jsonrpc must be '2.0'"})
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise Error(INVALID_REQUEST, "invalid request", {"detail": "method must be a non-empty string"})
    args, kwargs = decode_params(obj.get("params"))
    return Request(method, args, kwargs, obj.get("id"))


def parse_response(obj: Any) -> Response:
    """Validate one response object; raises :class:`Error` (INVALID_REQUEST) when it is malformed."""
    if not isinstance(obj, dict) or "id" not in obj or ("result" in obj) == ("error" in obj):
        raise Error(INVALID_REQUEST, "invalid response", {"detail": "not a JSON-RPC response"})
    if "result" in obj:
        return Response(obj["id"], obj["result"])
    err = obj["error"]
    if not isinstance(err, dict) or not isinstance(err.get("code"), int):
        raise Error(INVALID_REQUEST, "invalid response", {"detail": "malformed error object"})
    error = exception_from_json(err["code"], str(err.get("message", "")), err.get("data"))
    return Response(obj["id"], None, error)


def is_response(obj: Any) -> bool:
    """True for an object shaped like a response rather than a request."""
    return isinstance(obj, dict) and "method" not in obj and ("result" in obj or "error" in obj)
