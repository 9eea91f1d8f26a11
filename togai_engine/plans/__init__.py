"""Price plans (versioned: each version immutable once ACTIVE, with rate cards) and their association with accounts over time."""
