"""The platform health service ``platform.health``: peers, heartbeats, stale and dropped agents.

:mod:`.tracker` holds the table and its rules; :mod:`.service` is the agent that feeds it from the
router and answers ``get_platform_health()`` / ``get_agent_health(identity)``.
"""
