"""Package boundaries from the design: the model and preprocessing never pull in cluster code, and inside
pipelines/ the subpackages import each other one way only, through public names."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FORBIDDEN = ("ray", "mlflow", "webdataset")


def _modules_after_import(statement: str) -> set[str]:
    return _modules_after_each([statement])[statement]


def _modules_after_each(statements: list[str]) -> dict[str, set[str]]:
    """statement -> the modules loaded after it, the statements run in that order in one fresh interpreter.

    One process for all of them, not one each (torch alone takes 2-4 s to import): a statement that would pull in a
    module when run alone pulls it in here too, unless an earlier statement already did, and then the earlier
    one is the first to show it."""
    script = "import json, sys\nloaded = {}\n" + "".join(
        f"{statement}\nloaded[{statement!r}] = sorted(sys.modules)\n" for statement in statements
    )
    script += "print(json.dumps(loaded))"
    result = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return {statement: set(modules) for statement, modules in json.loads(result.stdout).items()}


BOUNDED = [
    "import pare_model",
    "import pare_model.body_model, pare_model.geometry, pare_model.joint_sets, pare_model.safe_pickle",
    "import pare_model.body_model.procedural.generator, pare_model.body_model.procedural.files",
    "import pare_model.model, pare_model.losses, pare_model.metrics, pare_model.checkpoint",
    "import pare_model.export",
    "import pare_model.backbones, pare_model.heads",
    "import preprocessing, preprocessing.render, preprocessing.crop",
    "import preprocessing.augment.crop_geometry, preprocessing.augment.photometric, preprocessing.augment.synthetic_occlusion",
]
"""Imports of the model and preprocessing packages that must not load cluster code or pipelines/."""


def test_model_and_preprocessing_do_not_import_cluster_code():
    for statement, modules in _modules_after_each(BOUNDED).items():
        leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
        assert not leaked, f"`{statement}` imported {leaked[:10]}"
        assert not any(m == "pipelines" or m.startswith("pipelines.") for m in modules), statement


def test_the_boundary_check_sees_a_leak():
    """The check above can fail: each statement's modules are recorded after it, in order."""
    modules = _modules_after_each(["import json", "import webdataset"])
    assert "webdataset" not in modules["import json"] and "webdataset" in modules["import webdataset"]


def test_cli_starts_without_torch():
    modules = _modules_after_import("import pipelines.cli; pipelines.cli.build_parser()")
    assert "torch" not in modules, "`pare --help` should not pay for importing torch"


def test_build_model_from_assets_keeps_its_public_paths():
    import pare_model
    import pare_model.checkpoint
    import pare_model.model

    home = pare_model.model.build_model_from_assets
    assert pare_model.checkpoint.build_model_from_assets is home
    assert pare_model.build_model_from_assets is home


# Rules inside pipelines/, on the import graph read statically from the source (every import
# statement, including those inside functions and under TYPE_CHECKING).

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "pipelines"
MAY_IMPORT_TRAINING = {"pipelines.training", "pipelines.commands", "pipelines.quickstart", "pipelines.study"}
"""Only training itself, the CLI and the jobs that train may import ``pipelines.training``; evaluation
and the rest read shards through ``pipelines.data``."""


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. pipelines.training.job
    path: str  # its file, relative to the repository root
    line: int
    target: str  # imported module, e.g. pipelines.data.stream
    names: tuple[str, ...]  # names taken from it (``from target import names``); () for ``import target``

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _pipelines_imports() -> list[Import]:
    found = []
    for path in sorted(PIPELINES.rglob("*.py")):
        source = _module_name(path)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            where = (source, str(path.relative_to(ROOT)), node.lineno)
            if isinstance(node, ast.Import):
                found += [Import(*where, alias.name, ()) for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = tuple(alias.name for alias in node.names)
                if target == "pipelines":  # from pipelines import quickstart: each name is a module
                    found += [Import(*where, f"pipelines.{name}", ()) for name in names]
                else:
                    found.append(Import(*where, target, names))
    return [i for i in found if i.target.startswith("pipelines.")]


def _package(module: str) -> str:
    """``pipelines.<pkg>``: the subpackage (or top-level module) of a module under pipelines."""
    return ".".join(module.split(".")[:2])


def test_the_import_graph_covers_pipelines():
    imports = _pipelines_imports()
    assert any(i.source == "pipelines.cli" and i.target.startswith("pipelines.commands") for i in imports)
    assert any(i.source == "pipelines.evaluation.job" and i.target == "pipelines.io.cluster" for i in imports), (
        "function-level imports must be in the graph"
    )


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles_between_pipelines_subpackages():
    edges: dict[str, set[str]] = {}
    evidence: dict[tuple[str, str], str] = {}
    for i in _pipelines_imports():
        a, b = _package(i.source), _package(i.target)
        if a != b and a != "pipelines":
            edges.setdefault(a, set()).add(b)
            evidence.setdefault((a, b), f"{i.where} imports {i.target}")
    cycle = _find_cycle(edges)
    assert cycle is None, (
        "import cycle between pipelines' subpackages: "
        + " -> ".join(cycle or [])
        + "\n"
        + "\n".join(evidence[a, b] for a, b in zip(cycle or [], (cycle or [])[1:], strict=False))
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_a_sibling_packages_private_names():
    reaching = [
        f"{i.where} imports {', '.join(n for n in i.names if _private(n)) or 'the private module'} from {i.target}"
        for i in _pipelines_imports()
        if _package(i.source) != _package(i.target)
        and (any(_private(n) for n in i.names) or any(_private(part) for part in i.target.split(".")))
    ]
    assert not reaching, "private names are for their own package:\n" + "\n".join(reaching)


def test_only_the_cli_imports_commands():
    importers = [
        f"{i.where} imports {i.target}"
        for i in _pipelines_imports()
        if _package(i.target) == "pipelines.commands"
        and _package(i.source) not in ("pipelines.commands", "pipelines.cli")
    ]
    assert not importers, "pipelines/commands holds the CLI only; move what others need out of it:\n" + "\n".join(
        importers
    )


def test_only_the_cli_and_the_training_jobs_import_training():
    importers = [
        f"{i.where} imports {i.target}"
        for i in _pipelines_imports()
        if _package(i.target) == "pipelines.training" and _package(i.source) not in MAY_IMPORT_TRAINING
    ]
    assert not importers, "only commands, quickstart and study may import pipelines.training:\n" + "\n".join(importers)
