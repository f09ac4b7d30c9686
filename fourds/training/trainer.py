"""The training loop shared by every method: budget, schedules, validation, checkpoints, resume.

The trainer knows a method only through :class:`~fourds.method.base.Method`: it asks
for the parameter groups, builds one optimiser per group from the config, and
back-propagates each group's objective into that group's parameters only. 4Ds's two
optimisers, KD's one and teacher training's one are the same code path.

See docs/TRAINING.md for the budget rule, the schedules, model selection and the
resume guarantee.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fourds.config import ConfigError, TrainConfig
from fourds.devices import select_device
from fourds.evaluation.predict import accuracy, predict_logits
from fourds.method.base import Method
from fourds.training.callbacks import Callback
from fourds.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointMismatchError,
    check_compatible,
    config_fingerprint,
    load_checkpoint,
    resumable_config,
    save_checkpoint,
)
from fourds.training.optimization import build_optimizer, build_scheduler
from fourds.training.reproducibility import capture_rng_state, derived_seed, restore_rng_state, seed_everything

CHECKPOINT_NAME = "last.pt"


class NonFiniteLossError(FloatingPointError):
    """A loss term, objective or gradient norm became NaN or infinite; nothing was updated."""

    def __init__(self, step: int, problems: dict[str, str]):
        self.step = step
        self.problems = problems
        super().__init__(f"step {step}: " + ", ".join(f"{name} is {value}" for name, value in problems.items()))


@dataclass
class TrainResult:
    """What one ``Trainer.fit`` produced; the method itself holds the selected weights."""

    metrics: dict[str, float]
    """Final metrics: the last epoch's train means and the selected evaluation's ``val/*``."""
    history: list[dict[str, float]]
    """One entry per epoch end and per evaluation between epoch ends, with ``step`` and ``epoch``."""
    steps: int
    wall_seconds: float
    """Whole run, including earlier sessions of a resumed run up to their last checkpoint."""
    images_per_second: float
    """Training images processed per second of training time (validation and checkpoints excluded)."""
    best_step: int | None
    """Step of the kept weights under ``selection="best_val"``; None otherwise."""
    unlabelled_images: int
    """Size of the unlabelled set the steps drew from; 0 when they drew none."""
    checkpoint_path: Path | None


@dataclass
class _RunState:
    """Everything about a run's progress that a checkpoint must carry, as plain data."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_steps: int = 0
    epoch_correct: int = 0
    epoch_seen: int = 0
    last_epoch_metrics: dict[str, float] = field(default_factory=dict)
    last_eval_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    best_acc: float | None = None
    best_eval_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    images_seen: int = 0


@dataclass
class _Optimisation:
    """A method's parameter groups, each with its optimiser and learning-rate schedule."""

    groups: dict[str, list[nn.Parameter]]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]


@dataclass(frozen=True)
class _Budget:
    train_size: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    unlabelled_size: int = 0
    """Unlabelled images the method draws from; 0 when it draws none."""
    unlabelled_batch_size: int = 0


def unlabelled_batch_indices(seed: int, size: int, batch_size: int, steps: range) -> list[list[int]]:
    """The unlabelled images of each training step (0-based), a pure function of the seed and the step.

    The unlabelled set is walked in passes of its own, each a fresh seeded shuffle cut into
    ``size // batch_size`` batches (all images in one batch when fewer than ``batch_size``),
    independently of the labelled set. So every method trained with the same seed, step
    count and batch sizes sees exactly the same unlabelled images at every step, and a
    resumed run continues where it stopped.
    """
    if size < 1 or batch_size < 1:
        raise ValueError(f"unlabelled batches need size >= 1 and batch_size >= 1, got {size} and {batch_size}")
    per_pass = max(1, size // batch_size)
    orders: dict[int, list[int]] = {}
    batches = []
    for step in steps:
        pass_index, position = divmod(step, per_pass)
        if pass_index not in orders:
            generator = torch.Generator().manual_seed(derived_seed(seed, "unlabelled", pass_index))
            orders[pass_index] = torch.randperm(size, generator=generator).tolist()
        batches.append(orders[pass_index][position * batch_size : (position + 1) * batch_size])
    return batches


class Trainer:
    """Trains one :class:`Method` under one :class:`TrainConfig`.

    ``checkpoint_key`` is an extra identity a resumed checkpoint must match (recipes pass
    the run-config hash and the teacher's fingerprint), so a checkpoint folder cannot
    silently continue a different experiment. ``eval_batch_size`` defaults to ``batch_size``.
    """

    def __init__(
        self,
        method: Method,
        config: TrainConfig,
        *,
        batch_size: int,
        num_workers: int = 0,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: Path | None = None,
        description: str = "train",
        eval_batch_size: int | None = None,
        checkpoint_key: str = "",
        unlabelled_batch_size: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if unlabelled_batch_size < 0:
            raise ValueError(f"unlabelled_batch_size must be >= 0, got {unlabelled_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.method = method
        self.config = config
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.description = description
        self.checkpoint_key = checkpoint_key
        self.unlabelled_batch_size = unlabelled_batch_size
        self.device = select_device(config.device)

    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    # ------------------------------------------------------------------ the run

    def fit(
        self,
        train_set: Dataset,
        val_set: Dataset | None = None,
        *,
        unlabelled_set: Dataset | None = None,
        resume: bool = True,
    ) -> TrainResult:
        """Train for the configured budget; continue from ``checkpoint_dir/last.pt`` when ``resume``.

        With ``unlabelled_set`` (items ``(image, anything)``; the second element is ignored)
        and ``unlabelled_batch_size > 0``, each step also draws that many unlabelled images
        (:func:`unlabelled_batch_indices`) for methods with label-free terms
        (``Method.uses_unlabelled``); other methods never load them.

        The method ends with the selected weights (last step, or best validation accuracy)
        and stays on the training device. Raises :class:`NonFiniteLossError` before any
        update when a loss goes NaN/inf; on Ctrl-C the last checkpoint stays valid and the
        interrupt is re-raised.
        """
        session_start = time.perf_counter()
        budget = self._plan_budget(train_set, unlabelled_set)
        if self.config.selection == "best_val" and val_set is None:
            raise ValueError(f"{self.description}: selection='best_val' needs a validation set (val_set is None)")
        if val_set is not None and len(val_set) == 0:
            raise ValueError(f"{self.description}: the validation set is empty")

        seed_everything(self.config.seed, self.config.deterministic)
        self.method.to(self.device)
        optimisation = self._build_optimisation(budget)

        state = _RunState()
        saved_rng = None
        resumed_from = None
        if resume and self.checkpoint_path is not None and self.checkpoint_path.is_file():
            state, saved_rng = self._restore(budget, optimisation)
            resumed_from = self.checkpoint_path
        wall_before = state.wall_seconds

        self._notify(
            "on_train_start",
            {
                "description": self.description,
                "method": self.method.name,
                "total_steps": budget.total_steps,
                "steps_per_epoch": budget.steps_per_epoch,
                "batch_size": budget.batch_size,
                "train_size": budget.train_size,
                "unlabelled_size": budget.unlabelled_size,
                "unlabelled_batch_size": budget.unlabelled_batch_size,
                "val_size": len(val_set) if val_set is not None else 0,
                "device": str(self.device),
                "parameters": {group: sum(p.numel() for p in params) for group, params in optimisation.groups.items()},
                "start_step": state.step,
                "resumed_from": str(resumed_from) if resumed_from else None,
            },
        )
        bar = tqdm(
            total=budget.total_steps,
            initial=state.step,
            desc=self.description,
            disable=not self.config.progress,
            dynamic_ncols=True,
        )
        try:
            while state.step < budget.total_steps:
                epoch_index, done_in_epoch = divmod(state.step, budget.steps_per_epoch)
                loader = self._epoch_loader(train_set, budget, epoch_index, skip_batches=done_in_epoch)
                epoch_steps = range(state.step, min((epoch_index + 1) * budget.steps_per_epoch, budget.total_steps))
                unlabelled_batches = self._unlabelled_loader(unlabelled_set, budget, epoch_steps, epoch_index)
                if saved_rng is not None:
                    # After rebuilding the epoch's order: the generators continue exactly
                    # where the interrupted run left them.
                    restore_rng_state(saved_rng)
                    saved_rng = None
                self.method.train()
                tick = time.perf_counter()
                for (images, labels), unlabelled in zip(loader, unlabelled_batches):
                    metrics = self._train_step(images, labels, unlabelled, state, optimisation)
                    state.train_seconds += time.perf_counter() - tick
                    self._notify("on_step_end", state.step, metrics)
                    bar.update(1)
                    bar.set_postfix(self._postfix(metrics, state), refresh=False)
                    state.wall_seconds = wall_before + time.perf_counter() - session_start
                    self._at_step_boundary(state, budget, val_set, optimisation)
                    if state.step >= budget.total_steps:
                        break
                    tick = time.perf_counter()
        finally:
            bar.close()

        if self.config.selection == "best_val":
            self.method.load_state_dict(state.best_state)
        selected_eval = state.best_eval_metrics if self.config.selection == "best_val" else state.last_eval_metrics
        state.wall_seconds = wall_before + time.perf_counter() - session_start
        result = TrainResult(
            metrics={**state.last_epoch_metrics, **selected_eval},
            history=state.history,
            steps=state.step,
            wall_seconds=state.wall_seconds,
            images_per_second=state.images_seen / state.train_seconds if state.train_seconds > 0 else 0.0,
            best_step=state.best_step if self.config.selection == "best_val" else None,
            unlabelled_images=budget.unlabelled_size,
            checkpoint_path=self.checkpoint_path if self.checkpoint_path and self.checkpoint_path.is_file() else None,
        )
        self._notify("on_train_end", result)
        return result

    # ------------------------------------------------------------------ one step

    def _train_step(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        unlabelled: torch.Tensor | None,
        state: _RunState,
        optimisation: _Optimisation,
    ) -> dict[str, float]:
        step = state.step + 1
        groups, optimizers, schedulers = optimisation.groups, optimisation.optimizers, optimisation.schedulers
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if unlabelled is not None:
            unlabelled = unlabelled.to(self.device, non_blocking=True)
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)

        # Methods without label-free terms never get unlabelled images, and need not accept them.
        out = (
            self.method.training_step(images, labels)
            if unlabelled is None
            else self.method.training_step(images, labels, unlabelled)
        )
        if set(out.objectives) != set(groups):
            raise ValueError(
                f"method {self.method.name!r}: training_step returned objectives for {sorted(out.objectives)} "
                f"but parameter_groups() declares {sorted(groups)}"
            )
        scalars = {f"loss {name!r}": value for name, value in out.losses.items()}
        scalars |= {f"objective {name!r}": value for name, value in out.objectives.items()}
        values = self._finite_scalars(scalars, step)

        group_names = list(groups)
        for index, group in enumerate(group_names):
            objective = out.objectives[group]
            if not objective.requires_grad:
                raise ValueError(
                    f"method {self.method.name!r}: the objective of group {group!r} does not depend on any "
                    "learnable parameter (it does not require grad)"
                )
            torch.autograd.backward(objective, inputs=groups[group], retain_graph=index < len(group_names) - 1)

        metrics = {f"train/{name}": values[f"loss {name!r}"] for name in out.losses}
        metrics |= {f"train/objective/{group}": values[f"objective {group!r}"] for group in groups}
        if self.config.max_grad_norm is not None:
            norms = {
                group: float(nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
                for group, params in groups.items()
            }
            bad = {
                f"gradient norm of group {group!r}": str(norm)
                for group, norm in norms.items()
                if not math.isfinite(norm)
            }
            if bad:
                raise NonFiniteLossError(step, bad)
            metrics |= {f"train/grad_norm/{group}": norm for group, norm in norms.items()}

        for group in group_names:
            metrics[f"lr/{group}"] = optimizers[group].param_groups[0]["lr"]
            optimizers[group].step()
            schedulers[group].step()
            optimizers[group].zero_grad(set_to_none=True)

        metrics |= {f"train/{name}": float(value) for name, value in out.extras.items()}
        correct = int((out.logits.detach().argmax(dim=1) == labels).sum())
        state.step = step
        state.images_seen += labels.shape[0] + (unlabelled.shape[0] if unlabelled is not None else 0)
        state.epoch_correct += correct
        state.epoch_seen += labels.shape[0]
        state.epoch_steps += 1
        for name, value in metrics.items():
            if name.startswith("train/"):
                state.epoch_sums[name] = state.epoch_sums.get(name, 0.0) + value
        metrics["train/acc"] = state.epoch_correct / state.epoch_seen
        return metrics

    def _finite_scalars(self, scalars: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """Check every loss and objective in one device sync; raise before anything is updated."""
        for label, value in scalars.items():
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(
                    f"method {self.method.name!r}: {label} must be a scalar tensor, got "
                    f"{type(value).__name__}{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}"
                )
        stacked = torch.stack([value.detach().float().reshape(()) for value in scalars.values()]).cpu()
        values = dict(zip(scalars, stacked.tolist(), strict=True))
        bad = {label: str(value) for label, value in values.items() if not math.isfinite(value)}
        if bad:
            raise NonFiniteLossError(step, bad)
        return values

    # ------------------------------------------------------------------ between steps

    def _at_step_boundary(
        self, state: _RunState, budget: _Budget, val_set: Dataset | None, optimisation: _Optimisation
    ) -> None:
        step, config = state.step, self.config
        finished = step >= budget.total_steps
        epoch_end = step % budget.steps_per_epoch == 0 or finished
        record: dict[str, float] = {}

        if val_set is not None and (
            finished or (step % config.eval_every_steps == 0 if config.eval_every_steps else epoch_end)
        ):
            eval_metrics = self._evaluate(val_set)
            state.last_eval_metrics = eval_metrics
            self._update_best(state, eval_metrics)
            record |= eval_metrics
            self._notify("on_eval", step, eval_metrics)

        if epoch_end:
            means = {name: total / state.epoch_steps for name, total in state.epoch_sums.items()}
            means["train/acc"] = state.epoch_correct / state.epoch_seen
            state.last_epoch_metrics = means
            state.epoch_sums, state.epoch_steps, state.epoch_correct, state.epoch_seen = {}, 0, 0, 0
            record = means | record
            self._notify("on_epoch_end", math.ceil(step / budget.steps_per_epoch), dict(record))

        if record:
            state.history.append({"step": step, "epoch": step / budget.steps_per_epoch, **record})

        checkpoint_due = finished or (
            step % config.checkpoint_every_steps == 0 if config.checkpoint_every_steps else epoch_end
        )
        if checkpoint_due and self.checkpoint_path is not None:
            self._save(state, budget, optimisation)
            self._notify("on_checkpoint", step, self.checkpoint_path)

    def _evaluate(self, val_set: Dataset) -> dict[str, float]:
        metrics = {}
        for role, model in self.method.evaluated_models().items():
            logits, labels = predict_logits(
                model, val_set, batch_size=self.eval_batch_size, device=self.device, num_workers=self.num_workers
            )
            metrics[f"val/{role}_acc"] = accuracy(logits, labels)
            metrics[f"val/{role}_loss"] = F.cross_entropy(logits, labels).item()
        return metrics

    def _update_best(self, state: _RunState, eval_metrics: dict[str, float]) -> None:
        if self.config.selection != "best_val":
            return
        acc = eval_metrics[f"val/{self._selection_role()}_acc"]
        if state.best_acc is None or acc > state.best_acc:
            state.best_acc, state.best_step, state.best_eval_metrics = acc, state.step, eval_metrics
            state.best_state = {name: value.detach().cpu().clone() for name, value in self.method.state_dict().items()}

    def _selection_role(self) -> str:
        """The model whose validation accuracy selects weights: the student, else the only one."""
        roles = list(self.method.evaluated_models())
        if "student" in roles:
            return "student"
        if len(roles) == 1:
            return roles[0]
        raise ValueError(
            f"method {self.method.name!r}: selection='best_val' needs a 'student' among evaluated_models(), got {roles}"
        )

    # ------------------------------------------------------------------ set-up

    def _plan_budget(self, train_set: Dataset, unlabelled_set: Dataset | None = None) -> _Budget:
        """Steps per epoch: every batch, except that a last batch of one image is dropped.

        BatchNorm cannot normalise a batch of one in train mode (torch raises), and which
        image is left out changes every epoch with the shuffle. An epoch is a pass over the
        labelled images; the unlabelled ones are drawn alongside, in passes of their own.
        """
        size = len(train_set)
        if size < 2:
            raise ValueError(f"{self.description}: the training set has {size} image(s); at least 2 are needed")
        if self.batch_size == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.method.modules()):
            raise ValueError(
                f"{self.description}: batch_size=1 cannot train a model with BatchNorm (a batch of one has no "
                "variance); use batch_size >= 2"
            )
        steps_per_epoch = len(self._epoch_batches(size, epoch=0))
        total_steps = self.config.max_steps or self.config.epochs * steps_per_epoch
        draws_unlabelled = (
            unlabelled_set is not None and self.unlabelled_batch_size > 0 and self.method.uses_unlabelled
        )
        unlabelled_size = len(unlabelled_set) if draws_unlabelled else 0
        return _Budget(
            size,
            self.batch_size,
            steps_per_epoch,
            total_steps,
            unlabelled_size=unlabelled_size,
            unlabelled_batch_size=self.unlabelled_batch_size if unlabelled_size else 0,
        )

    def _epoch_batches(self, size: int, epoch: int) -> list[list[int]]:
        """The epoch's shuffled batches of indices, a pure function of (seed, epoch)."""
        generator = torch.Generator().manual_seed(derived_seed(self.config.seed, "shuffle", epoch))
        order = torch.randperm(size, generator=generator).tolist()
        batches = [order[start : start + self.batch_size] for start in range(0, size, self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches.pop()
        return batches

    def _epoch_loader(self, train_set: Dataset, budget: _Budget, epoch: int, *, skip_batches: int) -> DataLoader:
        batches = self._epoch_batches(budget.train_size, epoch)[skip_batches:]
        return DataLoader(
            train_set,
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker_numpy,
            # Own generator: building a loader must not draw from the global RNG.
            generator=torch.Generator().manual_seed(derived_seed(self.config.seed, "workers", epoch)),
        )

    def _unlabelled_loader(self, unlabelled_set: Dataset | None, budget: _Budget, steps: range, epoch: int):
        """The unlabelled image batches of ``steps``, or None for each step when the method draws none."""
        if not budget.unlabelled_size:
            return itertools.repeat(None, len(steps))
        loader = DataLoader(
            unlabelled_set,
            batch_sampler=unlabelled_batch_indices(
                self.config.seed, budget.unlabelled_size, budget.unlabelled_batch_size, steps
            ),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker_numpy,
            generator=torch.Generator().manual_seed(derived_seed(self.config.seed, "unlabelled-workers", epoch)),
        )
        return (images for images, _ in loader)

    def _build_optimisation(self, budget: _Budget) -> _Optimisation:
        groups = self._parameter_groups()
        optimizers = {
            group: build_optimizer(params, self.config.optimizers[group], group=group)
            for group, params in groups.items()
        }
        schedulers = {
            group: build_scheduler(optimizer, self.config.optimizers[group], total_steps=budget.total_steps)
            for group, optimizer in optimizers.items()
        }
        return _Optimisation(groups, optimizers, schedulers)

    def _parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {name: list(params) for name, params in self.method.parameter_groups().items()}
        if not groups:
            raise ValueError(f"method {self.method.name!r} declares no parameter groups: nothing to train")
        owner: dict[int, str] = {}
        for group, params in groups.items():
            if group not in self.config.optimizers:
                raise ConfigError(
                    f"parameter group {group!r} of method {self.method.name!r} has no optimiser: add "
                    f"train.optimizers.{group} to the configuration (configured: {sorted(self.config.optimizers)})"
                )
            if not params:
                raise ValueError(f"method {self.method.name!r}: parameter group {group!r} is empty")
            for param in params:
                if not param.requires_grad:
                    raise ValueError(
                        f"method {self.method.name!r}: group {group!r} holds a parameter that does not require grad"
                    )
                if owner.setdefault(id(param), group) != group:
                    raise ValueError(
                        f"method {self.method.name!r}: a parameter is in both group {owner[id(param)]!r} "
                        f"and group {group!r}"
                    )
        return groups

    # ------------------------------------------------------------------ checkpoints

    def _identity(self, budget: _Budget) -> dict:
        return {
            "method_name": self.method.name,
            "batch_size": budget.batch_size,
            "train_size": budget.train_size,
            "unlabelled_size": budget.unlabelled_size,
            "unlabelled_batch_size": budget.unlabelled_batch_size,
            "checkpoint_key": self.checkpoint_key,
        }

    def _save(self, state: _RunState, budget: _Budget, optimisation: _Optimisation) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            **self._identity(budget),
            "train_config": resumable_config(self.config),
            "config_fingerprint": config_fingerprint(self.config),
            "method_state": self.method.state_dict(),
            "optimizers": {group: optimizer.state_dict() for group, optimizer in optimisation.optimizers.items()},
            "schedulers": {group: scheduler.state_dict() for group, scheduler in optimisation.schedulers.items()},
            "run_state": vars(state),
            "rng": capture_rng_state(),
        }
        save_checkpoint(payload, self.checkpoint_path)

    def _restore(self, budget: _Budget, optimisation: _Optimisation) -> tuple[_RunState, dict]:
        path = self.checkpoint_path
        payload = load_checkpoint(path)
        check_compatible(payload, path, identity=self._identity(budget), config=self.config)
        try:
            self.method.load_state_dict(payload["method_state"])
        except RuntimeError as exc:
            raise CheckpointMismatchError(
                f"{path}: the saved weights do not fit method {self.method.name!r}: {exc}"
            ) from exc
        for group, optimizer in optimisation.optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][group])
            optimisation.schedulers[group].load_state_dict(payload["schedulers"][group])
        return _RunState(**payload["run_state"]), payload["rng"]

    def _notify(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def _postfix(self, metrics: dict[str, float], state: _RunState) -> dict[str, str]:
        shown = {
            name.removeprefix("train/objective/"): f"{value:.3f}"
            for name, value in metrics.items()
            if name.startswith("train/objective/")
        }
        if "val/student_acc" in state.last_eval_metrics:
            shown["val_acc"] = f"{state.last_eval_metrics['val/student_acc']:.3f}"
        return shown


def _seed_worker_numpy(worker_id: int) -> None:
    # torch seeds python's random and itself in each worker; numpy would repeat across workers.
    np.random.seed(torch.initial_seed() % 2**32)
