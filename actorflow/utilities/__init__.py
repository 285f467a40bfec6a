"""Utilities, as in ``prefect.utilities``."""
