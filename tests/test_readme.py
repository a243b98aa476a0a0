"""The README's Python example runs as written."""

import importlib.util
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its Python example"
    for block in blocks:
        if "timm" in block and importlib.util.find_spec("timm") is None:
            continue  # timm is optional: pip install -e ".[timm]"
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "lam after 3 epochs: 0.5100" in out
    if importlib.util.find_spec("timm") is not None:
        rows = int(re.search(r"timm resnet10t, (\d+) mixed rows, loss ", out).group(1))
        assert 0 < rows <= 16  # the drop pairing leaves out same-class pairs


def test_readme_has_the_two_setup_commands():
    text = README.read_text()
    assert "pip install -e . && ammix demo" in text
    assert 'pip install -e ".[test]" && python -m pytest -q' in text
