"""The listener agent: subscribes to everything on every platform and logs it."""

__version__ = "0.1.0"
