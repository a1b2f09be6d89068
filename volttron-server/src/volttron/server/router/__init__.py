"""VIP routing: the bus-independent router and the ZeroMQ ROUTER socket that feeds it."""
