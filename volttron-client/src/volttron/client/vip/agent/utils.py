"""Porting path of ``volttron.platform.vip.agent.utils``: ``build_agent``."""

from __future__ import annotations

from typing import Any


def build_agent(*args: Any, **kwargs: Any) -> Any:
    """See :func:`volttron.client.runner.build_agent`."""
    from volttron.client.runner import build_agent as _build_agent

    return _build_agent(*args, **kwargs)
