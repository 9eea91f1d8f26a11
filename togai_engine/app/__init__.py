"""The application layer: the flows that cross domains, called by the MCP tools and the CLI.

It owns the unit of work (unit.py), takes `now`, and writes the audit row. Below it the domains import
downwards only; see README.md here for the order.
"""
