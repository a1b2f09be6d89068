"""The modular VOLTTRON platform process: router, core services, agent installation and supervision.

Nothing imports this package; it reaches agents only over VIP.
"""

__version__ = "0.1.0"
