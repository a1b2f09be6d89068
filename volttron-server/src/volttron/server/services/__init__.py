"""The platform's services: each one a module or folder (auth, pubsub, control, config store, ...)."""
