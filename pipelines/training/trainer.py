"""The training loop as a trainer with hooks (the shape of detectron2's ``TrainerBase`` and ``HookBase``).

:class:`Trainer` owns the step counter and the data schedule; :class:`~pipelines.training.step.StepRunner`
does one batch without waiting for its device (which batches were not finite is learnt whenever the
trainer logs, validates or checkpoints: :meth:`Trainer.settle`); the :class:`Hook` s do everything due
around it, in order: the logging window, pictures, validation, MLflow, the driver's progress file, the
checkpoint. Each hook writes what
it measured into ``trainer.metrics`` for the hooks after it. Fault injection is a hook too,
registered only when a test sets its environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from pipelines.config.schema import PareConfig
from pipelines.data.batch import TrainingBatch
from pipelines.training.checkpoints import LoopState
from pipelines.training.step import NonFiniteStop, StepOutput, StepRunner

NO_SCORE = 1e9
"""Score of checkpoints taken before the first validation."""


class Hook:
    """Called by :class:`Trainer` around the loop and every step; override what is needed."""

    def before_train(self, trainer: Trainer) -> None:
        pass

    def before_step(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        pass

    def after_train(self, trainer: Trainer) -> None:
        pass

    def on_stop(self, trainer: Trainer, reason: str, message: str) -> None:
        """The loop stops on purpose (e.g. non-finite losses) before ``max_steps``."""


@dataclass
class Rank:
    """Where this process sits: its rank, the world and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class Trainer:
    """Runs ``runner`` over the batches of ``next_batch(step)`` until ``train.max_steps``, calling the hooks."""

    config: PareConfig
    where: Rank
    core: torch.nn.Module  # the plain module: checkpoints, validation, pictures
    runner: StepRunner
    next_batch: Callable[[int], TrainingBatch]
    state: LoopState = field(default_factory=LoopState)
    hooks: list[Hook] = field(default_factory=list)
    last_score: float = NO_SCORE
    metrics: dict = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def register(self, hooks: Sequence[Hook]) -> None:
        self.hooks.extend(hooks)

    @property
    def final(self) -> bool:
        return self.state.step == self.config.train.max_steps

    def due(self, every: int) -> bool:
        """Whether something done every ``every`` steps (0: never) is due after this step; always at the end."""
        return self.final or (every > 0 and self.state.step % every == 0)

    def say(self, message: str) -> None:
        """A line for the user (rank 0): printed to the worker log and shown by the driver's progress."""
        if self.where.is_main:
            print(message, flush=True)
            self.messages.append(message)

    def run(self) -> bool:
        """Train to ``max_steps``; False when the loop stopped on purpose first (the hooks were told why)."""
        for hook in self.hooks:
            hook.before_train(self)
        self.runner.network.train()
        try:
            while self.state.step < self.config.train.max_steps:
                self.run_step()
        except NonFiniteStop as stop:
            epoch = self.state.step // self.config.train.steps_per_epoch
            for hook in self.hooks:
                hook.on_stop(self, "non_finite_loss", f"{stop} (epoch {epoch})")
            return False
        for hook in self.hooks:
            hook.after_train(self)
        return True

    def settle(self) -> None:
        """Learn which batches since the last time were not finite (the NaN policy may stop the run here), before
        anything is logged, validated or checkpointed; the step never waits for the device otherwise."""
        for step in self.runner.settle():
            self.state.nan_skips += 1
            self.say(f"step {step}: non-finite values, batch skipped ({self.state.nan_skips} so far)")

    def run_step(self) -> None:
        started = time.perf_counter()
        batch = self.next_batch(self.state.step)
        waited = time.perf_counter() - started
        for hook in self.hooks:
            hook.before_step(self)
        out = self.runner(batch, self.state.step, waited)
        self.state.step += 1
        self.state.epoch = self.state.step // self.config.train.steps_per_epoch
        train = self.config.train
        if self.due(train.log_every) or self.due(train.validate_every) or self.due(train.checkpoint_every):
            self.settle()
        self.metrics = {}
        for hook in self.hooks:
            hook.after_step(self, out)
