"""Every option of every command says what it does in ``--help`` (the forwarded maintainer commands included)."""

from __future__ import annotations

import argparse

import pytest

from lossprofile import cli
from lossprofile.commands import FORWARDED


class Parsed(Exception):
    """Raised in place of parsing: the parser a command built, caught before it runs anything."""


def parser_of(argv: list[str], monkeypatch) -> argparse.ArgumentParser:
    def capture(self, args=None, namespace=None):
        raise Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Parsed) as caught:
        cli.run_command(argv)
    return caught.value.args[0]


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name not in FORWARDED:  # forwarded ones build their own parser, checked on their own
                    missing += [f"{name} {m}" for m in undocumented(sub)]
        elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


@pytest.mark.parametrize("command", sorted(FORWARDED))
def test_every_option_of_a_forwarded_command_has_help(command, monkeypatch):
    assert undocumented(parser_of([command], monkeypatch)) == []


def test_every_option_of_the_built_in_commands_has_help(monkeypatch):
    assert undocumented(parser_of(["score"], monkeypatch)) == []
