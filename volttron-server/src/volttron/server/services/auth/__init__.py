"""Authentication: the auth.json model, the ZAP decision and its socket loop (docs/protocol.md §8.2, §8.4)."""
