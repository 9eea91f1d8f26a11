"""The sandbox clock: a database whose current time is a row in it, moved forward by hand."""
