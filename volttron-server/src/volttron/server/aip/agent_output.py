"""An agent's stdout and stderr, re-logged in the platform log (docs/protocol.md §4.4, §9 item 14).

stderr lines that are JSON log records (what ``setup_logging`` makes an agent write when the
platform launched it) are re-emitted as records of logger ``<prefix>.<identity>.<agent's logger>``.
Other stderr lines are text, logged under ``<prefix>.<identity>`` at WARNING unless a syslog
``<N>`` prefix says otherwise. stdout lines go to ``<prefix>.stdout`` at INFO. Every record carries
``agent_identity`` and ``remote_name`` attributes, and its ``processName`` is the agent's identity
(so the platform log's ``(<process> <pid>)`` names the agent). The last error seen is kept for
status output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import BinaryIO

from volttron.utils.logging import record_from_json, split_syslog_prefix

MAX_LINE_BYTES = 64 * 1024
PLAIN_STDERR_LEVEL = logging.WARNING


class AgentOutputRelay:
    """Turns one agent's output lines into platform log records; remembers the last error line."""

    def __init__(self, identity: str, prefix: str = "agents") -> None:
        self.identity = identity
        self.prefix = prefix
        self.last_error: str | None = None
        self.pid: int | None = None
        """The agent process's pid, put on plain-text records (the supervisor sets it at each start)."""
        self._stderr_logger = logging.getLogger(f"{prefix}.{identity}")
        self._stdout_logger = logging.getLogger(f"{prefix}.stdout")

    def stderr_line(self, raw: bytes | str) -> None:
        """Log one stderr line: a JSON record as itself, anything else as text."""
        line = _text(raw)
        if not line.strip():
            return
        record = record_from_json(line, f"{self.prefix}.{self.identity}")
        if record is not None:
            record.agent_identity = self.identity
            record.processName = self.identity  # the platform log's "(<process> <pid>)" names the agent
            if record.levelno >= logging.ERROR:
                self.last_error = _error_summary(record)
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
            return
        level, text = split_syslog_prefix(line, PLAIN_STDERR_LEVEL)
        if level >= logging.WARNING:
            self.last_error = text.strip()
        self._emit(self._stderr_logger, level, text)

    def stdout_line(self, raw: bytes | str) -> None:
        """Log one stdout line at INFO."""
        line = _text(raw)
        if line.strip():
            self._emit(self._stdout_logger, logging.INFO, line)

    def pump(self, stream: BinaryIO, handle: Callable[[bytes], None]) -> None:
        """Feed every line of ``stream`` to ``handle`` until end of file (then close the stream)."""
        try:
            while True:
                line = stream.readline(MAX_LINE_BYTES)
                if not line:
                    break
                handle(line)
        except (OSError, ValueError):  # the pipe was closed under us: the process is gone
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _emit(self, logger: logging.Logger, level: int, text: str) -> None:
        if not logger.isEnabledFor(level):
            return
        extra = {"agent_identity": self.identity, "remote_name": self.identity}
        record = logger.makeRecord(logger.name, level, "<agent output>", 0, "%s", (text,), None, extra=extra)
        record.processName = self.identity
        if self.pid is not None:
            record.process = self.pid
        logger.handle(record)


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text.rstrip("\r\n")


def _error_summary(record: logging.LogRecord) -> str:
    message = record.getMessage().strip().splitlines()
    summary = message[0] if message else ""
    exc_text = getattr(record, "exc_text", None)
    if isinstance(exc_text, str) and exc_text.strip():
        summary = (
            f"{summary}: {exc_text.strip().splitlines()[-1]}"
            if summary
            else exc_text.strip().splitlines()[-1]
        )
    return summary
