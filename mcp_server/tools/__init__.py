"""Tool modules; importing one registers its tools."""
