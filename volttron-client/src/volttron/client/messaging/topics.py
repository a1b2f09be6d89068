"""Topic templates used by the platform and its agents.

Each template is a :class:`Topic`: a string with ``{placeholders}`` that, called with keyword
arguments, fills them in. ``ALERTS(agent_class='ListenerAgent', agent_uuid='v1_listener')``.
"""

from __future__ import annotations

import string
from typing import Any


class Topic(str):
    """A topic template; calling it formats the placeholders given, leaving the others."""

    __slots__ = ()

    def __call__(self, **kwargs: Any) -> Topic:
        return Topic(string.Formatter().vformat(self, (), _Keep(kwargs)))

    def _(self, **kwargs: Any) -> Topic:
        """Like calling it (the original's spelling)."""
        return self(**kwargs)


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


HEARTBEAT = Topic("heartbeat/{identity}")
ALERTS_BASE = Topic("alerts")
ALERTS = Topic("alerts/{agent_class}/{agent_uuid}")
PLATFORM = Topic("platform")
PLATFORM_SHUTDOWN = Topic("platform/shutdown")
DRIVER_TOPIC_BASE = "devices"
DRIVER_TOPIC_ALL = "all"
DEVICES_VALUE = Topic("devices/{campus}/{building}/{unit}/{path}")
ANALYSIS_VALUE = Topic("analysis/{campus}/{building}/{unit}/{path}")
RECORD = Topic("record/{subtopic}")
LOGGER_BASE = Topic("datalogger")
CONFIG_TOPIC_BASE = "config"
ACTUATOR_SCHEDULE_REQUEST = Topic("devices/actuators/schedule/request")
ACTUATOR_SCHEDULE_RESULT = Topic("devices/actuators/schedule/result")
ACTUATOR_SCHEDULE_ANNOUNCE = Topic("devices/actuators/schedule/announce/{campus}/{building}/{unit}")
ACTUATOR_GET = Topic("devices/actuators/get/{campus}/{building}/{unit}/{point}")
ACTUATOR_SET = Topic("devices/actuators/set/{campus}/{building}/{unit}/{point}")
ACTUATOR_VALUE = Topic("devices/actuators/value/{campus}/{building}/{unit}/{point}")
ACTUATOR_ERROR = Topic("devices/actuators/error/{campus}/{building}/{unit}/{point}")
