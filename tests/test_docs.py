"""The docs hold: every `ammix` command quoted in README.md, docs/*.md and the config files' header
comments passes the config validator as written (a report command: its argument parser), and every
relative link resolves."""

import argparse
import itertools
import re
import shlex
from pathlib import Path

import pytest

from ammix.cli import main
from ammix.experiments import report, toy

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# A command runs to the end of its line, code span, comment or `&&`.
COMMAND = re.compile(r"\bammix (train|sweep|toy|report)\b([^`#&|\n]*)")
# A trailing backslash continues a command on the next line (in a YAML header, after its `#`).
CONTINUATION = re.compile(r"\\\n[#\s]*")
PLACEHOLDER = re.compile(r"\b[A-Z]{3,}\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def header(path: Path) -> str:
    """The comment lines a YAML file starts with."""
    return "\n".join(itertools.takewhile(lambda line: line.startswith("#"), path.read_text().splitlines()))


def quoted_commands():
    """(command, arguments) of every train, sweep, toy and report command quoted in the docs and config
    headers. demo and analyze are left out; a report is only parsed: it reads runs that exist only after
    training."""
    for path in DOCS + CONFIGS:
        text = path.read_text() if path.suffix == ".md" else header(path)
        for match in COMMAND.finditer(CONTINUATION.sub(" ", text)):
            command, args = match.group(1), shlex.split(match.group(2))
            # A bare `ammix train` in prose names the command; `ammix train CONFIG` is a pattern.
            if args and not PLACEHOLDER.search(match.group(2)):
                where = path.relative_to(ROOT)
                yield pytest.param(command, args, id=f"{where}: ammix {command} {' '.join(args)}")


def relative_links():
    for path in DOCS:
        for target in LINK.findall(path.read_text()):
            if "://" not in target and not target.startswith(("#", "mailto:")):
                yield pytest.param(path, target.split("#")[0], id=f"{path.relative_to(ROOT)}: {target}")


@pytest.mark.parametrize("command, args", list(quoted_commands()))
def test_quoted_command_validates(command, args, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(ROOT)
    if command == "train":
        code = main(["train", *args, "--print-config"])
    elif command == "sweep":  # --dry-run validates every planned run's config and starts nothing
        code = main(["sweep", *args, "--dry-run", "--runs-dir", str(tmp_path)])
    elif command == "report":  # an unknown or misspelt option exits 2
        parser = argparse.ArgumentParser()
        report.add_arguments(parser)
        parser.parse_args(args)
        code = 0
    else:
        parser = argparse.ArgumentParser()
        toy.add_arguments(parser)
        parsed = parser.parse_args(args)
        toy.toy_configs(toy.load_toy(parsed.spec), parsed.overrides, parsed.quick, parsed.settings,
                        parsed.methods)
        code = 0
    assert code == 0, capsys.readouterr().err


def test_the_docs_quote_commands_of_each_kind():
    kinds = [param.values[0] for param in quoted_commands()]
    assert {"train", "sweep", "toy", "report"} <= set(kinds)


@pytest.mark.parametrize("path, target", list(relative_links()))
def test_relative_link_resolves(path, target):
    assert (path.parent / target).exists()
