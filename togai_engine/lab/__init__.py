"""The pricing lab: quotes, plan comparisons on real usage, plan files (see README.md)."""
