"""Price plans (immutable, with rate cards) and their association with accounts over time."""
