"""The ``lpm`` command line: a click group, one module per command.

Each command lives in its own module of :mod:`lpm.cli` and is attached below with
``main.add_command(...)``; a command module imports heavy dependencies (aiohttp, the emulator,
the SDK) inside the command so ``lpm --help`` stays fast.  Logs go to stderr, so a command's
stdout is free for its output (``lpm emulator --json`` relies on that).
"""

from __future__ import annotations

import logging

import click

from lpm._version import __version__
from lpm.cli import agent_cmd, chat_cmd, demo_cmd, emulator_cmd, run_cmd


def _configure_logging(verbose: int) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=Console(stderr=True), show_path=verbose >= 2, rich_tracebacks=True)
    logging.basicConfig(level=level, format="%(name)s: %(message)s", datefmt="[%X]", handlers=[handler])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="lpm")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """lp-messaging-sdk: LivePerson messaging from Python, and a local Conversational Cloud."""
    _configure_logging(verbose)


main.add_command(emulator_cmd.emulator)
main.add_command(demo_cmd.demo)
main.add_command(chat_cmd.chat)
main.add_command(agent_cmd.agent)
main.add_command(run_cmd.run)


if __name__ == "__main__":
    main()
