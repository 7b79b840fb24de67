"""The driver's preflight of test shards against their manifests, and the count of samples they lose.

Evaluation numbers that silently cover fewer samples than the test set would mislead: a shard
whose size or sha256 differs from its manifest (truncated by a failed copy, say) makes
evaluation fail before any Ray actor starts, naming the shards and the fix. With
``evaluate.allow_damaged_shards=true`` it goes on and reports exactly how many of the samples
the manifests list it did not evaluate (:func:`expected_samples` minus what it read).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.data.manifest import shard_problems
from pipelines.evaluation.source import EvaluationError
from pipelines.io.storage import Storage

MAX_NAMED = 5


def damaged_shards(folders: Sequence) -> list[str]:
    """What is wrong with the shards of every folder (:class:`~pipelines.data.shard_folders.ShardFolder`)."""
    return [
        f"{folder.uri}/{problem}"
        for folder in folders
        for problem in shard_problems(Storage(folder.uri), "", folder.manifest)
    ]


def check_shards(folders: Sequence, allow_damaged: bool) -> list[str]:
    """The damaged shards' problems; raises :class:`EvaluationError` naming them unless ``allow_damaged``."""
    problems = damaged_shards(folders)
    if problems and not allow_damaged:
        named = "; ".join(problems[:MAX_NAMED]) + (
            f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        )
        raise EvaluationError(
            f"{len(problems)} shard(s) differ from their manifest, so evaluation would cover fewer samples than the "
            f"test set: {named}. Rebuild them (rerun `pare preprocess`; `pare shards validate DIR` lists every problem), "
            "or set evaluate.allow_damaged_shards=true to evaluate the rest and report the lost samples"
        )
    return problems


def expected_samples(folders: Sequence, max_samples: int = 0) -> int:
    """Samples evaluation should read: what the manifests list (the first ``max_samples`` per folder)."""
    return sum(min(folder.total, max_samples) if max_samples else folder.total for folder in folders)
