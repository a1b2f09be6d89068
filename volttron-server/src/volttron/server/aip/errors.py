"""Errors of agent installation and supervision.

::

    VolttronError
     +-- AIPError                      any agent installation or supervision failure
          +-- AgentNotFoundError       no agent matches a UUID, UUID prefix or identity
          +-- AmbiguousAgentError      a UUID prefix matches several agents (``matches`` lists them)
          +-- InvalidIdentityError     an identity that cannot name an agent directory
          +-- IdentityInUseError       the identity is installed and ``force`` was not given
          +-- AgentBusyError           another install/remove of the same identity is in progress
          +-- AgentInstallError        an install step failed (``step`` names it); nothing was left behind
               +-- DependencyConflictError   the agent's requirements would change a platform package
          +-- AgentProcessError        an agent process could not be started or stopped

Messages are written for the person at ``vctl``: one sentence saying what happened and what to do.
"""

from __future__ import annotations

from volttron.utils.errors import VolttronError


class AIPError(VolttronError):
    """A failure of agent installation or supervision."""


class AgentNotFoundError(AIPError, LookupError):
    """No installed agent matches the given UUID, UUID prefix or identity."""


class AmbiguousAgentError(AIPError, LookupError):
    """A UUID prefix matches more than one agent; ``matches`` holds ``(uuid, identity)`` pairs."""

    def __init__(self, message: str, matches: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.matches = matches


class InvalidIdentityError(AIPError, ValueError):
    """An identity that is not valid for an agent (characters, length, reserved names)."""


class IdentityInUseError(AIPError):
    """The identity is already installed; pass ``force`` to reinstall it."""


class AgentBusyError(AIPError):
    """Another install or removal of the same identity holds its lock."""


class AgentInstallError(AIPError):
    """An install step failed; ``step`` names it. The platform was left as it was before."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step


class DependencyConflictError(AgentInstallError):
    """The agent's requirements would upgrade or downgrade a platform package (``conflicts`` names them)."""

    def __init__(self, message: str, conflicts: list[str]) -> None:
        super().__init__(message, "check")
        self.conflicts = conflicts


class AgentProcessError(AIPError):
    """An agent process could not be started or stopped."""
