"""Invoices: one per account and billing period; DRAFT while open, then DUE, PAID or VOID."""
