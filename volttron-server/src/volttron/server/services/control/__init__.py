"""The control service ``platform.control``: install, run and describe agents over VIP (reference §3.3)."""
