"""The pub/sub service the router serves itself (reference §2.6): subscription index, protected topics."""
