"""Small helpers the rest of the package shares."""
