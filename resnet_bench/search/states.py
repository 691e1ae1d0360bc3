"""Training states that survive a change of machine: kept in an Optuna artifact store every worker can read.

A trial saves its training state after every epoch to a file of its machine (`<out>/<study>/states/`); a retry on
that machine resumes from it. With `sweep --artifacts DIR` (a folder every worker's machine mounts: NFS, a cluster
file system), each epoch's state is also written to Optuna's FileSystemArtifactStore there, under a new name each
epoch, and the trial's attribute `state_artifact` names the last one written whole; a retry on any machine fetches it
and resumes from its last epoch. The previous epoch's artifact is removed once the new one is named, and the last
one when the trial ends.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import optuna

from resnet_bench.files import atomic_path

STATE_ARTIFACT = "state_artifact"  # the trial attribute naming its last state in the artifact store


class SharedStates:
    """The artifact store of a sweep's training states (a folder shared by every worker's machine)."""

    def __init__(self, folder: str | Path) -> None:
        from optuna.artifacts import FileSystemArtifactStore

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = FileSystemArtifactStore(self.folder)

    def fetch(self, attrs: dict[str, Any], local: Path) -> bool:
        """Copy the trial's last shared state to `local` where this machine has no state of its own; True if one
        was fetched."""
        artifact = attrs.get(STATE_ARTIFACT)
        if not artifact or local.exists():
            return False
        try:
            reader = self.store.open_reader(artifact)
        except optuna.artifacts.exceptions.ArtifactNotFound:
            return False
        with reader, atomic_path(local) as tmp, open(tmp, "wb") as out:
            out.write(reader.read())
        return True

    def publish(self, trial: optuna.Trial, local: Path, epoch: int) -> None:
        """Share the state saved after `epoch`: written under a new name, then named on the trial, then the previous
        one removed, so that the trial always names a state written whole."""
        previous = trial.user_attrs.get(STATE_ARTIFACT)
        artifact = f"{trial.study.study_name}-trial-{trial.number}-{uuid.uuid4().hex[:8]}-epoch-{epoch}.state"
        with open(local, "rb") as body:
            self.store.write(artifact, body)
        trial.set_user_attr(STATE_ARTIFACT, artifact)
        if previous and previous != artifact:
            self.remove(previous)

    def discard(self, trial: optuna.Trial) -> None:
        """Remove the trial's shared state (it ended, and no retry will read it)."""
        artifact = trial.user_attrs.get(STATE_ARTIFACT)
        if artifact:
            self.remove(artifact)

    def remove(self, artifact: str) -> None:
        try:
            self.store.remove(artifact)
        except optuna.artifacts.exceptions.ArtifactNotFound:
            pass
