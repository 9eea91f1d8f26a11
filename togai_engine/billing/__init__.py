"""Billing runs: turning started periods into DRAFT invoices and due ones into DUE invoices."""
