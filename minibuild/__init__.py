"""minibuild: small, correct, reproducible container images of the programs you already have."""

__version__ = "0.1.0"
