"""Units of work over shard folders, and Ray actors that run them with a progress bar.

A folder with at least two shards per actor is split by shard (one unit each, so the bar moves
shard by shard and a slow shard does not hold the others); a smaller folder, or one read only
up to ``max_samples``, is split by sample index into one unit per actor. Each actor builds its
:class:`~pipelines.evaluation.predictors.EvalContext` (loads the model) once and then takes
units as they come (``ray.util.ActorPool``), so fast actors do more. Several measurements of one
model (the evaluation on the test set and on the training images, the occlusion analysis) can share
one set of actors (:func:`shared_actors`) instead of starting and loading their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from pare_model.errors import UserFacingError
from pipelines.evaluation.measure import Unit
from pipelines.evaluation.predictors import ContextSpec, EvalContext


def plan_units(folders: Sequence, actors: int, max_samples: int = 0) -> list[tuple[Unit, int]]:
    """(unit, expected samples) for every folder (:class:`~pipelines.data.shard_folders.ShardFolder`)."""
    units = []
    for folder in folders:
        total = min(folder.total, max_samples) if max_samples else folder.total
        if not max_samples and len(folder.urls) >= 2 * actors:
            units += [(Unit((url,)), count) for url, count in zip(folder.urls, folder.samples, strict=True)]
        else:
            parts = max(1, min(actors, total))
            units += [
                (Unit(folder.urls, part, parts, max_samples), total // parts + (part < total % parts))
                for part in range(parts)
            ]
    return units


class Worker:
    """One evaluation process: its context, and the named job functions it runs on units."""

    def __init__(self, spec: ContextSpec) -> None:
        # A user error here is kept and raised by run(): from __init__ Ray reports it as an ActorDiedError
        # whose cause is only text; from a method it is a RayTaskError the CLI unwraps to the message.
        self.context: EvalContext | None = None
        self.error: UserFacingError | None = None
        try:
            self.context = EvalContext(spec)
        except UserFacingError as error:
            self.error = error

    def run(self, job: Callable[[EvalContext, Unit], Any], unit: Unit) -> Any:
        if self.error is not None:
            raise self.error
        return job(self.context, unit)


@dataclass(frozen=True)
class EvaluationActors:
    """Ray actors that have each built the context of ``spec`` (loaded its model), kept for several jobs."""

    spec: ContextSpec
    handles: tuple[Any, ...]


def _start(spec: ContextSpec, count: int, cpus: int, gpus: float) -> tuple[Any, ...]:
    import ray

    remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(Worker)
    return tuple(remote.remote(spec) for _ in range(count))


@contextlib.contextmanager
def shared_actors(spec: ContextSpec, actors: int, cpus: int, gpus: float) -> Iterator[EvaluationActors]:
    """``actors`` actors for ``spec``, to pass to several :func:`run_units` calls; killed when the block ends."""
    import ray

    started = EvaluationActors(spec, _start(spec, max(1, actors), cpus, gpus))
    try:
        yield started
    finally:
        for handle in started.handles:
            ray.kill(handle)


def run_units(
    spec: ContextSpec,
    job: Callable[[EvalContext, Unit], Any],
    units: Sequence[tuple[Unit, int]],
    actors: int,
    cpus: int,
    gpus: float,
    description: str,
    shared: EvaluationActors | None = None,
) -> Iterator[Any]:
    """Results of ``job`` on every unit (in unit order), with a progress bar: on ``shared``'s actors, which must
    have been made for ``spec`` (they hold their CPUs, so others might never start beside them), otherwise on
    ``actors`` new Ray actors (at most one per unit)."""
    from ray.util import ActorPool

    if shared is not None and shared.spec != spec:
        raise ValueError(f"the shared evaluation actors were made for {shared.spec}, not for {spec}")
    handles = shared.handles if shared is not None else _start(spec, max(1, min(actors, len(units))), cpus, gpus)
    pool = ActorPool(list(handles))
    expected = {id(unit): samples for unit, samples in units}
    with tqdm(total=sum(expected.values()), desc=description, unit="sample") as bar:
        ordered = [unit for unit, _ in units]
        for unit, result in zip(ordered, pool.map(lambda actor, u: actor.run.remote(job, u), ordered), strict=True):
            bar.update(expected[id(unit)])
            yield result
