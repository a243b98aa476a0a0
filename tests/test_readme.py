"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert "lam after 3 epochs: 0.5100" in capsys.readouterr().out


def test_readme_has_the_two_setup_commands():
    text = README.read_text()
    assert "pip install -e . && ammix demo" in text
    assert 'pip install -e ".[test]" && python -m pytest -q' in text
