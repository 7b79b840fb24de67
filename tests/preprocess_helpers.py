"""Shared helpers of the preprocessing failure tests: the job as a subprocess, and comparing its output with a clean run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.data.manifest import MANIFEST_FILE


def start_preprocess(args: list[str], address: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``pare preprocess --quiet ARGS`` joining the Ray cluster at ``address``, in a process group of its own,
    its stdout and stderr together in ``stdout``."""
    env = dict(env or os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "preprocess",
        "--quiet",
        *args,
        f"preprocess.ray_address={address}",
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def assert_same_shards(output: Path, reference: Path, folder: str) -> None:
    """``output/folder`` holds exactly what a clean run wrote to ``reference/folder``: the same manifest, the same
    shard bytes, no work files and no temporary file of a killed writer."""
    manifest = (output / folder / MANIFEST_FILE).read_text()
    assert manifest == (reference / folder / MANIFEST_FILE).read_text()
    for shard in json.loads(manifest)["shards"]:
        assert (output / folder / shard["name"]).read_bytes() == (reference / folder / shard["name"]).read_bytes()
    assert not (output / folder / "_work").exists()
    assert sorted(p.name for p in (output / folder).glob("shard-*")) == sorted(
        p.name for p in (reference / folder).glob("shard-*")
    )
