"""Subcommands of the ``spadekit`` CLI, one module each (discovered automatically)."""
