"""Shared fixtures: one procedural body model per test session, written in both formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests choose their stores; a developer's server must not get their runs
# Ray runs its workers at nice 15, so that they yield to everything else on the machine. On a machine busy with
# other work at normal priority that starves the suite's Ray jobs (measured 2026-12-03 on 2 cores kept busy by
# two other processes: a 137-s test past its 600-s limit). The suite's Ray workers compete as equals instead, in
# the clusters the tests start and in those their commands start (Ray reads it when a node starts).
os.environ.setdefault("RAY_worker_niceness", "0")
# Ray's log monitor (one per node, forwarding workers' output to the driver) lists its log folder every 0.1 s while
# it holds fewer than this many files; with 0 it lists it every 0.5 s (its LOG_NAME_UPDATE_INTERVAL_S) and still
# forwards every line. The suite's two session clusters live for the whole run and collect hundreds of worker
# logs: their log monitors used 46 and 24 s of CPU in one run (2026-12-03), about half of it listing; on a
# cluster left idle after 40 actors, 3.7 s per 2 minutes with Ray's default and 1.9 s with 0.
os.environ.setdefault("RAY_LOG_MONITOR_MANY_FILES_THRESHOLD", "0")


def pytest_configure(config) -> None:
    """torch's (OpenMP's) threads in each test process and the commands it starts: the cores shared among
    pytest-xdist's processes (set before any test imports torch; an OMP_NUM_THREADS of the user's wins).

    More threads than cores make OpenMP's waiting threads spin on cores another process needs: measured
    2026-12-03 on 2 cores, the two learning-sanity tests side by side took 538 s (993 s of CPU) with 2 threads
    each, and 119 s (138 s of CPU) with 1. Ray's workers get their own count from Ray (1 per CPU they hold),
    and training sets ``train.torch_threads``; this is for the work the tests do in their own processes.
    """
    if hasattr(config, "workerinput"):  # a pytest-xdist test process
        workers = int(config.workerinput["workercount"])
    elif getattr(config.option, "numprocesses", None):
        return  # pytest-xdist's controller: its test processes inherit its environment and set their own
    else:
        workers = 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_FIXTURES = SHARED / "fixtures" / "real"

TRAINED_RUN_TIMEOUT_S = 1800
"""pytest-timeout for a test using ``trained_run``: whichever runs first pays for the training (600 steps: about
300 s inside the two-process suite on 2 idle cores on 2026-12-03, 595 s on the same machine running half as fast
on 2026-12-04, and 670-750 s with both cores busy elsewhere), and under pytest-xdist another may wait for it.
1800 s keeps the time an idle run needs under a third of it on the slower day too."""


def pytest_collection_modifyitems(items) -> None:
    """Tests that use the shared trained model get :data:`TRAINED_RUN_TIMEOUT_S` (the suite's default is 600 s),
    and count as slow; then the slow modules run first (:func:`slow_modules_first`)."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            marker = item.get_closest_marker("timeout")
            if marker is None or (marker.args and marker.args[0] < TRAINED_RUN_TIMEOUT_S):
                item.add_marker(pytest.mark.timeout(TRAINED_RUN_TIMEOUT_S), append=False)
            item.add_marker(pytest.mark.slow)
    items[:] = slow_modules_first(items)


def slow_modules_first(items: list) -> list:
    """The modules holding a ``slow`` test first, each module's tests together and in their order.

    `make test` hands whole modules to its two pytest-xdist processes as they free up (``--dist loadscope``, so a
    module's fixtures are made once), in this order. With the slow modules (10-300 s each) first, the fast ones
    fill the end of the run on both processes. In alphabetical order the two-node tests (about 140 s) came last,
    and one process ran them alone while the other had finished: 50 s of a 864-s suite (2026-12-07).
    """
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow") and item.module}
    return sorted(items, key=lambda item: item.module is None or item.module.__name__ not in slow_modules)


@pytest.fixture(scope="session")
def procedural_model():
    """The generated arrays of the seed-0 procedural body model."""
    from pare_model.body_model.procedural.generator import generate

    return generate(0)


@pytest.fixture(scope="session")
def procedural_dir(procedural_model, tmp_path_factory) -> Path:
    """An asset folder with the seed-0 model as SMPL-style pickles."""
    from pare_model.body_model.procedural.files import write_asset_folder

    folder = tmp_path_factory.mktemp("body_model_pkl")
    write_asset_folder(procedural_model, folder, "pkl")
    return folder


@pytest.fixture(scope="session")
def procedural_npz_dir(procedural_model, tmp_path_factory) -> Path:
    """The same model as .npz model files."""
    from pare_model.body_model.procedural.files import write_asset_folder

    folder = tmp_path_factory.mktemp("body_model_npz")
    write_asset_folder(procedural_model, folder, "npz")
    return folder


@pytest.fixture(scope="session")
def body_model(procedural_dir):
    from pare_model.body_model import load_body_model

    return load_body_model(procedural_dir)


def require_real_fixture(relative: str) -> Path:
    """Path of a real-format sample file in ../shared; without it the test skips, or fails in CI
    (``PARE_REQUIRE_FIXTURES=1``, set by .ci/run), where a missing fixture means a broken checkout."""
    path = REAL_FIXTURES / relative
    if not path.exists():
        missing_fixture(f"real fixture {path} is not present")
    return path


def missing_fixture(message: str) -> None:
    if os.environ.get("PARE_REQUIRE_FIXTURES", "") not in ("", "0"):
        pytest.fail(f"{message}; CI needs ../shared/fixtures beside the checkout")
    pytest.skip(message)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole session: starting Ray costs 5-10 s on 2 cores."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        # log_to_driver=False, as `pare` connects: the tests that run a command in their own process see the console
        # a user sees, without the workers' and raylets' lines Ray would forward (under load a raylet's start-up line
        # once reached a test's captured stderr), and a message reaches them only if the command shows it itself.
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def s3_env():
    """A real S3 API server (moto) on 127.0.0.1 for the module: the ``AWS_*`` variables that point clients at it."""
    from tests.s3_server import MotoS3

    server = MotoS3().start()
    yield server.env
    server.stop()


def run_folder(tmp_path_factory, worker_id: str) -> Path:
    """A folder of this test run that every pytest-xdist test process shares (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def training_shards(procedural_dir, tmp_path_factory, ray_cluster, worker_id) -> Path:
    """Synthetic training (coco-eft/train) and validation (3dpw/test) shards, made once per test run: under
    pytest-xdist by the first test process that needs them, under a file lock, and reused by the others."""
    from filelock import FileLock

    from tests.train_helpers import make_training_shards

    shared = run_folder(tmp_path_factory, worker_id)
    root, done = shared / "training", shared / "training.done"
    with FileLock(str(shared / "training.lock")):
        if not done.exists():
            root.mkdir(exist_ok=True)
            make_training_shards(procedural_dir, root)
            done.write_text("")
    return root / "shards"


@pytest.fixture(scope="session")
def trained_run(procedural_dir, training_shards, tmp_path_factory, ray_cluster, worker_id):
    """`pare train configs/train_synthetic.yaml` as a subprocess joining the session's Ray cluster: (storage, stdout).

    Made once per test run: the training tests check it learns; the evaluation and serving tests measure its
    model. Under pytest-xdist the first test process that needs it trains it in the run's shared folder, under a
    file lock, and the others wait for it and reuse it (its body model is byte-identical to theirs).
    """
    import json

    from filelock import FileLock

    shared = run_folder(tmp_path_factory, worker_id)
    storage, record = shared / "cli-train", shared / "cli-train.json"
    with FileLock(str(shared / "cli-train.lock")):
        if not record.exists():
            storage.mkdir(exist_ok=True)
            stdout = _train_synthetic(procedural_dir, training_shards, storage, ray_cluster)
            record.write_text(json.dumps({"stdout": stdout}))
    return storage, json.loads(record.read_text())["stdout"]


def _train_synthetic(procedural_dir: Path, training_shards: Path, storage: Path, ray_cluster) -> str:
    import subprocess
    import sys

    overrides = [
        f"body_model.asset_dir={procedural_dir}",
        f"data.datasets.coco.shards=[{training_shards / 'coco-eft' / 'train'}]",
        f"data.validation=[{training_shards / '3dpw' / 'test'}]",
        f"train.storage_path={storage}",
        f"train.ray_address={ray_cluster.get_runtime_context().gcs_address}",
    ]
    env = os.environ | {"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "2", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("pare")),
            "train",
            str(ROOT / "configs" / "train_synthetic.yaml"),
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=TRAINED_RUN_TIMEOUT_S - 60,
        cwd=storage,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout
