"""Authentication: the auth.json model, the ZAP decision and its socket loop (reference §8.2, §8.4)."""
