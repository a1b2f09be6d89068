"""The control service ``platform.control``: install, run and describe agents over VIP.

See docs/protocol.md §3.3.
"""
