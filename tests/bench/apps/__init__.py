"""ASGI apps the bench serves next to the demo: the raw limit and the same endpoints on plain Channels."""
