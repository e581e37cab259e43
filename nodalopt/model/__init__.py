"""Model parts: each element family states its variables and constraints once (see :mod:`.core`)."""
