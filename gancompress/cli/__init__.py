"""Command-line interface (the only part of gancompress that imports typer and rich)."""
