"""Subcommands of `selfheal`: one module each, exposing `add_parser` and `run`."""
