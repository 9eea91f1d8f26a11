"""get_metrics: EVENTS and USAGE series over UTC buckets (see README.md)."""
