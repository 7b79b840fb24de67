"""Package boundaries from the design: the model and preprocessing never pull in cluster code."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("ray", "mlflow", "webdataset")


def _modules_after_import(statement: str) -> set[str]:
    script = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import pare_model",
        "import pare_model.body_model, pare_model.geometry, pare_model.joint_sets, pare_model.safe_pickle",
        "import pare_model.body_model.procedural.generator, pare_model.body_model.procedural.files",
        "import pare_model.model, pare_model.losses, pare_model.metrics, pare_model.checkpoint",
        "import pare_model.backbones, pare_model.heads",
        "import preprocessing, preprocessing.render, preprocessing.crop",
        "import preprocessing.augment.crop_geometry, preprocessing.augment.photometric, preprocessing.augment.synthetic_occlusion",
    ],
)
def test_model_and_preprocessing_do_not_import_cluster_code(statement):
    modules = _modules_after_import(statement)
    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert not leaked, f"`{statement}` imported {leaked[:10]}"
    assert not any(m == "pipelines" or m.startswith("pipelines.") for m in modules)


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
