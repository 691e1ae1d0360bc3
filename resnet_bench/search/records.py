"""The trial record: the one place that names the fields a trial stores.

Every trial of a study stores these fields as attributes in the Optuna storage; the report, early
stopping and the experiments read them by these names. A record holds what is needed to rebuild
and re-train its network: `resnet-bench train "<spec>" --dataset <dataset> --seed <seed>` with
the stored recipe.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from resnet_bench.fields import FRACTION, INT, SPEC_FIELDS
from resnet_bench.files import NO_SPACE
from resnet_bench.recipe import precision_trained

# A trial's status, beside Optuna's own state: trained (complete, the recipe's every epoch), stopped (early
# stopping ended it at a rung: its values are that rung's; never on the front), infeasible (outside the
# constraints, or a combination the generator refuses: never trained), duplicate (the same network and recipe as
# a trial already trained: not trained again, its values taken from that trial), failed (an error while training).
TRAINED, STOPPED, INFEASIBLE, DUPLICATE, FAILED = "trained", "stopped", "infeasible", "duplicate", "failed"
STATUSES = (TRAINED, STOPPED, INFEASIBLE, DUPLICATE, FAILED)

INTERRUPTED = "interrupted (Ctrl-C)"  # the reason of a trial that Ctrl-C (SIGINT) ended


def retried_by_the_next_command(reason: str | None) -> bool:
    """A failed trial that the next sweep queues again, from its last training state: one that Ctrl-C or a full disk
    ended (its network did nothing wrong); a trial that failed by itself (diverged, out of memory) is not."""
    return reason == INTERRUPTED or str(reason or "").startswith(NO_SPACE)


@dataclass
class TrialRecord:
    """What one trial stores, field by field; None where not measured (yet)."""

    status: str = ""  # trained, stopped, infeasible, duplicate or failed; "" while running
    reason: str = ""  # why infeasible, duplicate or failed; "" when trained
    duplicate_of: int | None = None  # the trial whose network and recipe a duplicate repeats (its number)
    baseline: str = ""  # preset name of a hand-designed baseline; "" for a sampled candidate
    baseline_params: list[str] | None = None  # a baseline: the space's parameters it was enqueued with (its place)
    spec: str = ""  # the spec's one-line form, as trained (input channels and classes of the data set)
    recipe: dict[str, Any] | None = None  # Recipe.to_dict() of the recipe it was trained with
    seed: int | None = None  # weights, validation split and training (a confirm run: weights and training)
    split_seed: int | None = None  # a confirm run: the seed of the validation split it is measured on (the study's)
    confirms: int | None = None  # a confirm run: the number of the study's trial whose network it re-trains
    dataset: str = ""  # data set name
    val_size: int | None = None  # validation images carved from the training set
    input_size: int | None = None  # pixels, height = width
    params: int | None = None  # trainable parameters
    gflops: float | None = None  # conv + linear, 1e9 multiply-adds per image (fvcore)
    gflops_total: float | None = None  # everything fvcore counts
    activations: int | None = None  # output elements of conv and linear layers per image
    latency_ms: float | None = None  # batch-1 inference latency, measured alone (only when asked for)
    val_accuracy: float | None = None  # after the last epoch; the only accuracy used for selection
    val_images: int | None = None  # images behind val_accuracy (for its interval)
    val_correct: str = ""  # which validation images it classified correctly, one bit each (correctness.py)
    test_accuracy: float | None = None  # reported, never used for selection
    test_images: int | None = None  # images behind test_accuracy
    epochs: int | None = None  # epochs trained (a stopped trial's rung)
    rungs: dict[str, list[float]] | None = None  # early stopping: epochs -> the objectives' values at that rung
    rung_estimate: str = ""  # early stopping: what its rungs read for the accuracy (estimates.py); "" without rungs
    # Per epoch: epoch, train_loss, train_error (augmented images, during the epoch), val_accuracy, test_error (the
    # study's `curves`, else None), lr, seconds, and the rung estimates' measurements where an epoch took them
    # (val_loss, ema_val_accuracy, probe_val_accuracy, ema_seconds, probe_seconds): TrainResult.history_rows()
    history: list[dict[str, Any]] | None = None
    checkpoint: str = ""  # the trained weights (the study's `checkpoints`): a file `resnet-bench evaluate` reads
    resumed_from_epoch: int | None = None  # epochs restored from a killed worker's saved state (0: none)
    state_file: str = ""  # training state saved after every epoch while it runs (removed when it ends)
    train_seconds: float | None = None  # training time, evaluation excluded
    images_per_second: float | None = None  # training throughput
    compile_seconds: float | None = None  # torch.compile's first step, apart from train_seconds (0: not compiled)
    trial_seconds: float | None = None  # wall time of the whole trial: sampling, cost, training, storage
    overhead_seconds: float | None = None  # trial_seconds less the training call: sampling, cost, storage
    device: str = ""  # cpu, or cuda:N with the GPU's name
    threads: int | None = None  # CPU threads torch used
    precision: str = ""  # what it trained in, the recipe's auto resolved: bf16 (autocast) or fp32 (trained_precision)
    memory_format: str = ""  # channels_last or nchw
    torch_version: str = ""
    resnet_bench_version: str = ""

    def to_attrs(self) -> dict[str, Any]:
        """The fields that are set, as storage attributes."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != ""}

    def trained_precision(self) -> str:
        """bf16 or fp32: as stored, else (a trial of a release that did not store it) what its recipe's precision
        meant then: auto was bf16 autocast on CUDA and fp32 on the CPU; "" when it never trained."""
        return precision_trained(self.precision, (self.recipe or {}).get("precision", "auto"), self.device)

    def measured_on(self, data: Any) -> None:
        """The study's data (data.Splits) a result is measured on: its data set, validation images and image size,
        recorded for every trial, trained or not, so that results measured on other data are never compared."""
        self.dataset, self.val_size, self.input_size = data.dataset_name, data.val_size, data.image_size

    def add_training(self, result: Any, data: Any) -> None:
        """What one training measured (train.TrainResult) on the study's data (data.Splits), into the record, with
        the data it was measured on: the sweep's trials and confirm's runs record it alike."""
        self.measured_on(data)
        self.val_accuracy, self.test_accuracy = result.val_accuracy, result.test_accuracy
        self.val_images, self.test_images, self.val_correct = len(data.val), len(data.test), result.val_correct
        self.epochs, self.train_seconds = result.epochs, result.train_seconds
        self.resumed_from_epoch, self.compile_seconds = result.resumed_from_epoch, result.compile_seconds
        self.images_per_second, self.device, self.threads = result.images_per_second, result.device, result.threads
        self.precision, self.memory_format = result.precision, result.memory_format
        self.history = result.history_rows()

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrialRecord:
        """The record in a trial's attributes (unknown attributes are ignored)."""
        return cls(**{k: v for k, v in attrs.items() if k in FIELDS})


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialRecord))


def store_record(trial: Any, record: TrialRecord) -> None:
    """The record's fields that are set, as the trial's user attributes (an Optuna trial, or any object with its
    set_user_attr)."""
    for key, value in record.to_attrs().items():
        trial.set_user_attr(key, value)


# -- a study as a table ---------------------------------------------------------------------------------------

RUNNING, WAITING = "running", "waiting"  # the status column of a trial that has not ended
# The report's table: one flat row per trial. `number` and `state` are Optuna's; `status` is the record's, or
# running/waiting/failed for a trial that has none yet (a worker that died before storing it); the spec's main
# fields are spread into columns beside its one-line form; `recipe_epochs` is the recipe's epochs (the full budget,
# against `epochs` trained: a stopped trial's last rung); `started` and `completed` are ISO 8601, as Optuna
# stores them (the workers' local time).
_COLUMN_FIELDS = tuple(f for f in SPEC_FIELDS if f.column)  # the spec's fields that are columns (fields.py)
SPEC_COLUMNS = ("depth", *(f.name for f in _COLUMN_FIELDS))
_INT_SPEC_COLUMNS = ("depth", *(f.name for f in _COLUMN_FIELDS if f.kind == INT))
_FLOAT_SPEC_COLUMNS = tuple(f.name for f in _COLUMN_FIELDS if f.kind == FRACTION)
TRIAL_COLUMNS: tuple[str, ...] = (
    "number", "state", "status", "reason", "baseline", "is_baseline", "spec", *SPEC_COLUMNS,
    "params", "gflops", "gflops_total", "activations", "latency_ms", "val_accuracy", "val_images",
    "test_accuracy", "test_images", "epochs", "recipe_epochs", "resumed_from_epoch", "train_seconds", "compile_seconds",
    "images_per_second", "trial_seconds", "started", "completed", "seed", "dataset", "input_size", "device",
    "threads", "precision", "memory_format",
)


def spec_cells(spec: Any) -> dict[str, Any]:
    """A ResNetSpec's cells in its trial's row: its depth and each column field as resolved, tuples joined by '-'."""
    cells: dict[str, Any] = {"depth": spec.depth}
    for f in _COLUMN_FIELDS:
        value = getattr(spec, f.attribute)
        cells[f.name] = "-".join(map(str, value)) if isinstance(value, tuple) else value
    return cells


def trial_column_dtypes() -> dict[str, str]:
    """pandas dtypes of the trials table's number columns, read from TrialRecord's field types (nullable:
    a trial that was not trained has no accuracy); text columns stay object."""
    hints = typing.get_type_hints(TrialRecord)
    dtypes = {"number": "Int64", "recipe_epochs": "Int64", **dict.fromkeys(_INT_SPEC_COLUMNS, "Int64"),
              **dict.fromkeys(_FLOAT_SPEC_COLUMNS, "Float64"), "is_baseline": "bool"}
    for column in TRIAL_COLUMNS:
        kinds = typing.get_args(hints[column]) if column in hints else ()
        if int in kinds:
            dtypes[column] = "Int64"
        elif float in kinds:
            dtypes[column] = "Float64"
    return dtypes


@dataclass
class StudyTrials:
    """A study read from its storage as plain values: what the report works on (it never sees Optuna)."""

    name: str  # the study's name in the storage
    storage: str  # its URL
    objectives: tuple[tuple[str, str], ...]  # (metric, maximize or minimize), in the study's order
    dataset: str  # data set name, "" when the study holds no trial record yet
    constraints: dict[str, float]  # the study file's [constraints]
    reference_point: dict[str, float]  # the study file's [report] reference_point
    trials: Any  # pandas.DataFrame with TRIAL_COLUMNS, one row per trial, by number
    baseline_recipe: str = ""  # the recipe every baseline trained with, in words ("" when unknown)
    # Trial number -> its validation correctness (correctness.py), for the paired test; kept out of `trials`, whose
    # rows become the report's CSV and JSON.
    val_correct: dict[int, str] = dataclasses.field(default_factory=dict)
    confirm_runs: list[TrialRecord] = dataclasses.field(default_factory=list)  # `confirm`'s runs (search/confirm.py)
    # Trial number -> its per-epoch history (TrialRecord.history), for the trials trained to their recipe's epochs:
    # what the report measures the rung estimate on. Kept out of `trials` for the same reason as val_correct.
    histories: dict[int, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    rungs: tuple[int, ...] = ()  # the epochs early stopping judges at (the study's, on or off: its min_epochs, eta)
    rung_estimate: str = "val_accuracy"  # what those rungs read (estimates.py)
