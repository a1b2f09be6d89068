"""The pub/sub service the router serves itself: subscription index, protected topics.

See docs/protocol.md §2.6.
"""
