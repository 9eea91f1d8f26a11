"""togai-engine: a self-hosted usage-billing engine (Togai-compatible shapes)."""

__version__ = "0.1.0"
