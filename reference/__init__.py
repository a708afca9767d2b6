"""Float reference simulator of NIR graphs (being written)."""
