"""Routing between ZeroMQ platforms: discovery file, platform links, external RPC and pub/sub."""
