"""One module per CLI verb; nothing imports a verb but the CLI."""
