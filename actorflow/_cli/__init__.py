"""Subcommands of the ``actorflow`` command line, one module each."""
