"""Seats: per account and license id, the seat count over time (update_license)."""
