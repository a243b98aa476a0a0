"""The docs hold: every `ammix` command quoted in README.md, docs/*.md and the config files' header
comments passes the config validator as written (a report command: its argument parser), every
benchmark script they or the GPU scripts quote exists and parses its quoted arguments, and every
relative link resolves."""

import argparse
import itertools
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ammix.cli import main
from ammix.experiments import report, toy

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
SHELL_SCRIPTS = sorted((ROOT / "benchmarks").glob("*.sh"))
# A command runs to the end of its line, code span, comment or `&&`.
COMMAND = re.compile(r"\bammix (train|sweep|toy|report)\b([^`#&|\n]*)")
# A trailing backslash continues a command on the next line (in a YAML header, after its `#`).
CONTINUATION = re.compile(r"\\\n[#\s]*")
BENCHMARK = re.compile(r"\b(python3?|bash) (benchmarks/\w+\.(?:py|sh))([^`#&|\n]*)")
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


def quoted_benchmarks():
    """(interpreter, script, arguments) of every benchmark script run in the docs, config headers and
    the GPU scripts (their shell variables stay as literal arguments: only parsed)."""
    for path in DOCS + CONFIGS + SHELL_SCRIPTS:
        text = header(path) if path.suffix == ".yaml" else path.read_text()
        for interpreter, script, args in BENCHMARK.findall(CONTINUATION.sub(" ", text)):
            where = path.relative_to(ROOT)
            yield pytest.param(interpreter, script, shlex.split(args), id=f"{where}: {script}{args}")


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


class Parsed(Exception):
    """Raised in place of running a benchmark once its arguments have parsed."""


@pytest.mark.parametrize("interpreter, script, args", list(quoted_benchmarks()))
def test_quoted_benchmark_parses(interpreter, script, args, monkeypatch):
    if interpreter == "bash":  # a shell script is only syntax-checked
        assert subprocess.run(["bash", "-n", ROOT / script]).returncode == 0
        return
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, *given, **options):
        parse_args(parser, *given, **options)
        raise Parsed

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/x.py` puts it first
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as error:  # argparse exits 2 on an unknown or missing argument
        pytest.fail(f"{script} {' '.join(args)}: exited {error.code}")
    except Parsed:
        return
    pytest.fail(f"{script} never parsed its arguments")


@pytest.mark.parametrize("path, target", list(relative_links()))
def test_relative_link_resolves(path, target):
    assert (path.parent / target).exists()
