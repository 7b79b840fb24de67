"""Every KubeRay manifest under infra/kuberay validates against KubeRay's CRD schemas (ray.io/v1).

The schemas are the real CustomResourceDefinitions (``../shared/fixtures/kuberay``). Like a
Kubernetes API server with strict field validation, unknown fields are errors: every object
schema that lists ``properties`` (and does not preserve unknown fields) gets
``additionalProperties: false``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import SHARED, missing_fixture

ROOT = Path(__file__).resolve().parents[1]
CRDS = SHARED / "fixtures" / "kuberay"
MANIFESTS = sorted((ROOT / "infra" / "kuberay").glob("*.yaml"))


def strict(schema):
    """A copy of an OpenAPI v3 schema that refuses unknown fields, as the API server does."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    """A validator of the strict v1 schema of a KubeRay kind, made once per test process: the CRDs are 0.9 and
    1.4 MB of YAML (4 s each with PyYAML's Python parser on this machine, 0.4 s with its libyaml one, used where
    present), and checking a schema that size against its metaschema, as ``jsonschema.validate`` does on every
    call, took another 3 s."""
    path = CRDS / f"ray.io_{kind.lower()}s.yaml"
    if not path.exists():
        missing_fixture(f"KubeRay CRD {path} is not present")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def validate(manifest: dict) -> None:
    """Raise :class:`jsonschema.ValidationError` (the most relevant error, as ``jsonschema.validate``) if the
    manifest does not fit its kind's strict schema."""
    error = jsonschema.exceptions.best_match(crd_validator(manifest["kind"]).iter_errors(manifest))
    if error is not None:
        raise error


def test_there_are_manifests():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in MANIFESTS}
    assert {"RayCluster", "RayJob"} <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kuberay_crd(path):
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    validate(manifest)


def test_the_strict_schema_catches_a_misspelt_field():
    manifest = yaml.safe_load((ROOT / "infra" / "kuberay" / "raycluster.yaml").read_text())
    manifest["spec"]["workerGroupSpecs"][0]["maxReplica"] = 4
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        validate(manifest)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_credentials_come_from_secrets_never_inline(path):
    text = path.read_text()
    for word in ("password:", "secret_access_key:", "AWS_SECRET_ACCESS_KEY=", "MLFLOW_TRACKING_PASSWORD="):
        for line in text.splitlines():
            if word in line:
                assert "secretKeyRef" in line or line.strip().startswith("#"), line


def _pare_commands(entrypoint: str) -> list[list[str]]:
    import shlex

    commands = [shlex.split(part) for part in entrypoint.split("&&")]
    assert all(command[0] == "pare" for command in commands), entrypoint
    return [command[1:] for command in commands]


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name.startswith("rayjob-")], ids=lambda p: p.name)
def test_rayjob_entrypoints_are_valid_pare_commands(path):
    """Each `pare` command of a RayJob parses with the real CLI, and its config overrides load (no unknown key)."""
    from pipelines.cli import build_parser
    from pipelines.config.loader import load_config

    manifest = yaml.safe_load(path.read_text())
    for argv in _pare_commands(manifest["spec"]["entrypoint"]):
        args = build_parser().parse_args(argv)
        config_file = next((a for a in args.args if a.endswith(".yaml")), None)
        overrides = [a for a in args.args if "=" in a]
        shipped = ROOT / "configs" / Path(config_file).name if config_file else None
        config = load_config(shipped if shipped and shipped.is_file() else None, overrides)  # else the user's own file
        if argv[0] in ("evaluate", "occlusion-analysis"):
            assert args.checkpoint or args.run, argv
            assert config.evaluate.ray_address == "auto" and args.shards


def _gpu_group_per_gpu_cpus() -> float:
    """CPUs per GPU of the RayCluster's gpu worker group (its pods' CPU limit over their GPUs)."""
    cluster = yaml.safe_load((ROOT / "infra" / "kuberay" / "raycluster.yaml").read_text())
    (group,) = [g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"]
    (container,) = group["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    return float(limits["cpu"]) / float(limits["nvidia.com/gpu"])


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name.startswith("rayjob-")], ids=lambda p: p.name)
def test_gpu_training_workers_have_a_cpu_for_each_loader_process_and_fit_the_gpu_nodes(path):
    """A GPU training worker runs ``loader.num_workers`` loader processes beside itself: with fewer CPUs than that
    plus one they share cores and the GPU waits for data; and Ray places a worker only where a GPU comes with
    that many CPUs."""
    from pipelines.cli import build_parser
    from pipelines.config.loader import load_config

    manifest = yaml.safe_load(path.read_text())
    checked = 0
    for argv in _pare_commands(manifest["spec"]["entrypoint"]):
        args = build_parser().parse_args(argv)
        if argv[0] != "train":
            continue
        config_file = next(a for a in args.args if a.endswith(".yaml"))
        config = load_config(ROOT / "configs" / Path(config_file).name, [a for a in args.args if "=" in a])
        if not config.train.use_gpu:
            continue
        train, loader = config.train, config.loader
        assert train.cpus_per_worker >= loader.num_workers + 1, (path.name, train.cpus_per_worker, loader.num_workers)
        assert _gpu_group_per_gpu_cpus() >= train.cpus_per_worker, (path.name, _gpu_group_per_gpu_cpus())
        checked += 1
    if path.name == "rayjob-train.yaml":
        assert checked == 1
