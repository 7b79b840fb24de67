"""The training loop's hooks, in the order :func:`default_hooks` registers them.

Each does one thing that is due around the steps: where the workers run, the logging window's
statistics, pictures, validation, MLflow, the progress file the driver shows, Ray Train's
checkpoint report, and the status file that tells the driver how the loop ended.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pipelines.io.cluster import node_label
from pipelines.training.pictures import training_sheet
from pipelines.training.progress import ProgressWriter
from pipelines.training.status import write_status
from pipelines.training.step import StepOutput
from pipelines.training.trainer import Hook, Trainer

SCORE = "val_pa_mpjpe"
"""The metric Ray Train ranks checkpoints by (lower is better)."""

SHOWN = ("val/mpjpe", "val/pa_mpjpe", "val/baseline_pa_mpjpe", "val/orient_error_median")
"""The validation metrics of the one line per validation."""


class WorkerNodes(Hook):
    """Before the loop, where every rank runs. Rank 0 tags the run ``pare.worker_nodes.<restart>`` with the nodes by
    rank (a JSON list of ``{"id", "ip"}``: after a lost node, the tags of successive restarts tell which one went),
    prints them to its log and, when the workers span several nodes, shows them to the user."""

    def __init__(self, gather, logger) -> None:
        self.gather = gather  # () -> every rank's node, in rank order: a collective, called on every rank
        self.logger = logger

    def before_train(self, trainer: Trainer) -> None:
        nodes = self.gather()
        if not trainer.where.is_main:
            return
        if self.logger:
            self.logger.tag(f"pare.worker_nodes.{trainer.state.restarts}", json.dumps(nodes))
        ranks: dict[str, list[str]] = {}
        for rank, node in enumerate(nodes):
            ranks.setdefault(node_label(node), []).append(str(rank))
        where = "; ".join(f"{label}: rank {', '.join(numbers)}" for label, numbers in ranks.items())
        line = f"workers on {len(ranks)} node{'s' if len(ranks) > 1 else ''}: {where}"
        if len(ranks) > 1:
            trainer.say(line)
        else:
            print(line, flush=True)  # one node: the worker's log only


class WindowMetrics(Hook):
    """Every ``log_every`` steps: the window's step statistics, all-reduced over ranks, and the loop's counters. Data
    the loaders skipped is shown to the user when it first happens and each time the count has doubled since."""

    def __init__(self) -> None:
        self.shown_skipped = 0

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        if not trainer.due(trainer.config.train.log_every):
            return
        runner, state = trainer.runner, trainer.state
        reduced = runner.stats.reduced(trainer.where.world_size, trainer.where.device)
        skipped = int(reduced.pop("_skipped"))
        state.skipped_samples += skipped
        if skipped and state.skipped_samples >= 2 * self.shown_skipped:
            self.shown_skipped = state.skipped_samples
            trainer.say(
                f"step {state.step}: the loaders skipped {state.skipped_samples} samples or shard reads so far "
                "(unreadable, or ground truth with NaN or infinity); `pare shards validate` lists the problems"
            )
        trainer.metrics |= reduced | {
            "train/learning_rate": runner.optimizer.param_groups[0]["lr"],
            "train/segm_weight": out.terms["segm_weight"].item(),
            "train/epoch": state.epoch,
            "train/skipped_samples": state.skipped_samples,
            "train/nan_skips": state.nan_skips,
        }


class Pictures(Hook):
    """Every ``images_every`` steps, rank 0 logs a sheet of the batch: input, mesh, part labels, attention."""

    def __init__(self, logger, faces) -> None:
        self.logger, self.faces = logger, faces

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        every = trainer.config.train.images_every
        if not every or trainer.state.step % every or not self.logger or out.pred is None:
            return
        pred = {k: v.detach() for k, v in out.pred.items()}
        sheet = training_sheet(out.batch, pred, self.faces, trainer.config.model.focal_length)
        self.logger.image(sheet, f"images/step_{trainer.state.step:07d}.png")


class Validation(Hook):
    """Every ``validate_every`` steps all ranks validate; merged ``val/*`` metrics, the score and the best score."""

    def __init__(self, run_validation) -> None:
        self.run_validation = run_validation  # trainer -> metrics dict ({} without validation data)

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        if not trainer.due(trainer.config.train.validate_every):
            return
        values = self.run_validation(trainer)
        if not values:
            return
        trainer.last_score = values["val/pa_mpjpe"]
        trainer.state.best_pa_mpjpe = min(trainer.state.best_pa_mpjpe, trainer.last_score)
        values["val/best_pa_mpjpe"] = trainer.state.best_pa_mpjpe
        trainer.metrics |= values
        shown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(values.items()) if k in SHOWN)
        trainer.say(f"step {trainer.state.step}: {shown}")


class MlflowMetrics(Hook):
    """Rank 0 logs the step's metrics to the run, marks the data stage and records how the loop ended."""

    def __init__(self, logger) -> None:
        self.logger = logger

    def before_train(self, trainer: Trainer) -> None:
        if self.logger:
            self.logger.tag("pare.restarts", str(trainer.state.restarts))

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        if self.logger and trainer.metrics:
            self.logger.metrics(trainer.metrics, trainer.state.step)

    def after_train(self, trainer: Trainer) -> None:
        if self.logger:
            self.logger.close()

    def on_stop(self, trainer: Trainer, reason: str, message: str) -> None:
        if self.logger:
            self.logger.metrics({"train/nan_skips": trainer.state.nan_skips}, trainer.state.step)
            self.logger.close()


class Progress(Hook):
    """Rank 0 keeps the progress file current: step, loss, rate and the lines for the user."""

    def __init__(self, writer: ProgressWriter | None) -> None:
        self.writer = writer

    def before_train(self, trainer: Trainer) -> None:
        if self.writer:
            self.writer.update(trainer.state.step, {}, trainer.messages, force=True)

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        if self.writer:
            self.writer.update(trainer.state.step, trainer.metrics, trainer.messages, force=trainer.final)


class CheckpointReport(Hook):
    """Every ``checkpoint_every`` steps every rank reports to Ray Train, rank 0 with the checkpoint."""

    def __init__(self, save, report) -> None:
        self.save = save  # (trainer, folder) -> None: writes the checkpoint files
        self.report = report  # (metrics, folder or None) -> None: ray.train.report

    def after_step(self, trainer: Trainer, out: StepOutput) -> None:
        if not trainer.due(trainer.config.train.checkpoint_every):
            return
        metrics = {k.replace("/", "_"): v for k, v in trainer.metrics.items()}
        metrics |= {"step": trainer.state.step, SCORE: trainer.last_score}
        with tempfile.TemporaryDirectory() as folder:
            if trainer.where.is_main:
                self.save(trainer, Path(folder))
            self.report(metrics, folder if trainer.where.is_main else None)


class Status(Hook):
    """Rank 0 writes how the loop ended to the status file, which the driver reads after Ray Train returns."""

    def __init__(self, status_uri: str) -> None:
        self.status_uri = status_uri

    def after_train(self, trainer: Trainer) -> None:
        if trainer.where.is_main:
            write_status(
                self.status_uri,
                {
                    "state": "finished",
                    "step": trainer.state.step,
                    "best_pa_mpjpe": trainer.state.best_pa_mpjpe,
                    "skipped_samples": trainer.state.skipped_samples,
                },
            )

    def on_stop(self, trainer: Trainer, reason: str, message: str) -> None:
        if trainer.where.is_main:
            write_status(
                self.status_uri, {"state": "stopped", "reason": reason, "step": trainer.state.step, "message": message}
            )
