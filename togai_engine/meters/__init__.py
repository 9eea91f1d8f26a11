"""Usage meters: turn raw events into billable quantities (see README.md)."""
