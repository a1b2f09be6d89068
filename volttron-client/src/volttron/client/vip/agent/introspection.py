"""The answer to ``<method>.inspect`` (docs/protocol.md §2.5): a method's parameters, doc and source."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any


def describe_method(method: Callable[..., Any]) -> dict[str, Any]:
    """The ``<name>.inspect`` answer: parameters, doc, source location and return annotation."""
    info: dict[str, Any] = {}
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = {}
        for pname, param in signature.parameters.items():
            entry: dict[str, Any] = {"kind": param.kind.name}
            if param.default is not param.empty:
                entry["default"] = _json_value(param.default)
            if param.annotation is not param.empty:
                entry["annotation"] = _type_name(param.annotation)
            params[pname] = entry
        info["params"] = params
    doc = inspect.getdoc(method)
    if doc:
        info["doc"] = doc
    try:
        info["source"] = {
            "file": inspect.getsourcefile(method),
            "line_number": inspect.getsourcelines(method)[1],
        }
    except (OSError, TypeError):
        pass
    if signature is not None and signature.return_annotation is not signature.empty:
        info["return"] = _type_name(signature.return_annotation)
    return info


def _json_value(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _type_name(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
