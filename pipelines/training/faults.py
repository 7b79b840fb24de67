"""Fault injection for the failure tests: real process deaths and real NaNs, switched on by environment variables.

The driver reads these variables and hands them to the workers with the loop config, so they
reach workers of an already-running Ray cluster. Unset (the normal case), nothing happens.

- ``PARE_FAULT_KILL_AT_STEP=k`` with ``PARE_FAULT_MARKER=FILE``: the worker of rank
  ``PARE_FAULT_KILL_RANK`` (default 1, else 0) SIGKILLs itself when it reaches step k, once
  (the marker file records that it happened, so the restarted worker carries on).
- ``PARE_FAULT_PAUSE_AT_STEP=k`` with ``PARE_FAULT_MARKER=FILE``: that worker (same rank as above) writes the
  marker and sleeps ``PARE_FAULT_PAUSE_S`` seconds (default 600) when it reaches step k, once; the other ranks
  wait for it in the next collective. Training stands still at a known step while a test kills a node.
- ``PARE_FAULT_NAN_AT_STEP=k``: the loss of the first batch tried at step k is NaN on every rank.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.training.trainer import Hook, Trainer

PREFIX = "PARE_FAULT_"


def from_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}


@dataclass
class Faults:
    kill_at_step: int | None = None
    kill_rank: int = 1
    marker: str = ""
    nan_at_step: int | None = None
    nan_done: bool = False
    pause_at_step: int | None = None
    pause_s: float = 600.0

    @classmethod
    def parse(cls, settings: dict[str, str]) -> Faults:
        def number(name: str) -> int | None:
            value = settings.get(PREFIX + name)
            return int(value) if value not in (None, "") else None

        return cls(
            number("KILL_AT_STEP"),
            number("KILL_RANK") or 1,
            settings.get(PREFIX + "MARKER", ""),
            number("NAN_AT_STEP"),
            pause_at_step=number("PAUSE_AT_STEP"),
            pause_s=float(settings.get(PREFIX + "PAUSE_S") or 600.0),
        )

    def _first_time(self, at_step: int | None, step: int, rank: int, world_size: int, what: str) -> bool:
        """Whether this rank does ``what`` now: it is the target rank at ``at_step`` and the marker is not there yet
        (then it is written, so that the restarted workers carry on)."""
        target = self.kill_rank if self.kill_rank < world_size else 0
        if at_step is None or step != at_step or rank != target:
            return False
        marker = Path(self.marker) if self.marker else None
        if marker is None or marker.exists():
            return False
        marker.write_text(f"{what} rank {rank} at step {step}, pid {os.getpid()}\n")
        return True

    def maybe_kill(self, step: int, rank: int, world_size: int) -> None:
        if self._first_time(self.kill_at_step, step, rank, world_size, "killed"):
            os.kill(os.getpid(), signal.SIGKILL)

    def maybe_pause(self, step: int, rank: int, world_size: int) -> None:
        if self._first_time(self.pause_at_step, step, rank, world_size, "paused"):
            time.sleep(self.pause_s)

    def any(self) -> bool:
        return self.kill_at_step is not None or self.nan_at_step is not None or self.pause_at_step is not None

    def nan_now(self, step: int) -> bool:
        if self.nan_done or self.nan_at_step is None or step != self.nan_at_step:
            return False
        self.nan_done = True
        return True


class FaultInjection(Hook):
    """The test-only hook: kills this worker before the step of ``kill_at_step``, or pauses it before the step of
    ``pause_at_step``; makes the loss of the first batch tried at ``nan_at_step`` NaN on every rank (by wrapping
    the step's loss function)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def before_train(self, trainer: Trainer) -> None:
        loss_fn, faults = trainer.runner.loss_fn, self.faults

        def poisoned(pred, targets, step: int, epoch: int):
            loss, terms = loss_fn(pred, targets, step=step, epoch=epoch)
            return (loss * float("nan"), terms) if faults.nan_now(step) else (loss, terms)

        trainer.runner.loss_fn = poisoned

    def before_step(self, trainer: Trainer) -> None:
        self.faults.maybe_kill(trainer.state.step, trainer.where.rank, trainer.where.world_size)
        self.faults.maybe_pause(trainer.state.step, trainer.where.rank, trainer.where.world_size)
