"""The configuration store service, ``platform.config_store`` (docs/protocol.md §2.10).

- :mod:`.configs` types, names, parsing and ``config://`` references;
- :mod:`.agent_store` one agent's store and its ``.store`` file;
- :mod:`.store` every agent's store, and the pushes that follow a change;
- :mod:`.pusher` ordered, bounded delivery of pushes to agents;
- :mod:`.agent` the RPC interface (10.x and 9.x forms, capability checks);
- :mod:`.service` the platform service (``config_store_service`` is its factory).
"""
