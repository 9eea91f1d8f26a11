"""Scenario files: billing over time on a throwaway sandbox database, driven through the MCP server as a client
and checked against the invoices, wallets, entitlements and metrics they expect (README.md here)."""
