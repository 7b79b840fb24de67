"""Units of work over shard folders, and Ray actors that run them with a progress bar.

A folder with at least two shards per actor is split by shard (one unit each, so the bar moves
shard by shard and a slow shard does not hold the others); a smaller folder, or one read only
up to ``max_samples``, is split by sample index into one unit per actor. Each actor builds its
:class:`~pipelines.evaluation.predictors.EvalContext` (loads the model) once and then takes
units as they come (``ray.util.ActorPool``), so fast actors do more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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


def run_units(
    spec: ContextSpec,
    job: Callable[[EvalContext, Unit], Any],
    units: Sequence[tuple[Unit, int]],
    actors: int,
    cpus: int,
    gpus: float,
    description: str,
) -> Iterator[Any]:
    """Results of ``job`` on every unit (in unit order), on ``actors`` Ray actors, with a progress bar."""
    import ray
    from ray.util import ActorPool

    remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(Worker)
    count = max(1, min(actors, len(units)))
    pool = ActorPool([remote.remote(spec) for _ in range(count)])
    expected = {id(unit): samples for unit, samples in units}
    with tqdm(total=sum(expected.values()), desc=description, unit="sample") as bar:
        ordered = [unit for unit, _ in units]
        for unit, result in zip(ordered, pool.map(lambda actor, u: actor.run.remote(job, u), ordered), strict=True):
            bar.update(expected[id(unit)])
            yield result
