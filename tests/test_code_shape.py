"""The shape the code keeps: no function in pipelines/ grows past 60 lines (docstring and decorators included).

A long function there is a sign of set-up, policy and I/O mixed in one place, as the training loop once was;
split it into steps or hooks instead of raising the limit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60


def function_lengths(folder: Path) -> list[tuple[int, str]]:
    """(lines, "path:line name") of every function and method under ``folder``, nested ones included."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - first + 1, where))
    return found


def test_no_function_in_pipelines_is_longer_than_60_lines():
    lengths = function_lengths(ROOT / "pipelines")
    assert len(lengths) > 100, "the walk found too few functions: is pipelines/ where it should be?"
    too_long = [f"{where}: {lines} lines" for lines, where in lengths if lines > MAX_FUNCTION_LINES]
    assert not too_long, "split these functions (at most 60 lines each):\n" + "\n".join(too_long)


def test_the_measure_counts_decorators_docstrings_and_nested_functions(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(58))
    (package / "mod.py").write_text(
        f'@staticmethod\ndef outer():\n    """Doc."""\n{body}\n    def inner():\n        return 1\n    return inner\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    lengths = dict((where.split()[-1], lines) for lines, where in function_lengths(package))
    assert lengths == {"outer": 1 + 1 + 1 + 58 + 3, "inner": 2}
