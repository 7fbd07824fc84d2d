"""Subcommands of the `tfodkit` CLI, one module each."""
