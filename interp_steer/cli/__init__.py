"""The ``interp-steer`` command line: one subcommand per analysis, each writing a run folder."""

from interp_steer.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
