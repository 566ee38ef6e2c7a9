"""Training checkpoints: model, optimizer, scheduler, RNG and data-order state, written atomically.

A checkpoint is a folder (``model.pt``, ``trainer.pt``, ``manifest.json``) written to a temporary
sibling and swapped in by rename (:func:`crossrank._common.atomic_directory`), so a kill -9 or a full
disk at any moment leaves the previous checkpoint intact. The data order needs no saved permutation:
each epoch's negatives and step order are functions of (seed, epoch), so (epoch, step in epoch) is
enough to continue exactly where the run stopped.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
from pathlib import Path
from typing import Any

from .._common import atomic_directory, manifest_body, read_manifest, write_json
from ..errors import StateError

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = "crossrank-train-checkpoint"
VERSION = 1


class CheckpointError(OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one is kept."""


def save_checkpoint(
    path: str | os.PathLike[str], *, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]
) -> Path:
    """Write a checkpoint to ``path`` (replacing the previous one only once the new one is complete).

    Parameters
    ----------
    path : path-like
        Checkpoint folder.
    model, optimizer, scheduler : torch objects
        Their ``state_dict()`` are saved.
    state : dict
        JSON-ready training state (global step, epoch, step in epoch, losses, best dev score, ...).

    Raises
    ------
    CheckpointError
        Writing failed (disk full, permissions); the message names the folder and says the previous
        checkpoint survives.
    """
    import torch

    target = Path(path)
    try:
        # replaces=FORMAT: a folder of other files at ``path`` is never deleted by a checkpoint.
        with atomic_directory(target, overwrite=True, replaces=FORMAT) as tmp:
            torch.save(model.state_dict(), tmp / "model.pt")
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate(),
                },
                tmp / "trainer.pt",
            )
            for f in (tmp / "model.pt", tmp / "trainer.pt"):
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
            write_json(tmp / "manifest.json", manifest_body(FORMAT, VERSION, **state))
    except OSError as exc:
        kept = "the previous checkpoint is kept" if target.exists() else "no earlier checkpoint exists"
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise CheckpointError(
            exc.errno or errno.EIO, f"could not write checkpoint {target} ({reason}); {kept}"
        ) from exc
    return target


def load_checkpoint(
    path: str | os.PathLike[str], *, model: Any, optimizer: Any, scheduler: Any
) -> dict[str, Any]:
    """Restore a checkpoint into ``model``, ``optimizer`` and ``scheduler``; return its state dict.

    Parameters
    ----------
    path : path-like
        Checkpoint folder written by :func:`save_checkpoint`.
    model, optimizer, scheduler : torch objects
        Built with the same settings as the run that wrote it.

    Raises
    ------
    StateError
        Missing or unreadable checkpoint.
    """
    import torch

    root = Path(path)
    manifest, _ = read_manifest(root, FORMAT, VERSION, label="training checkpoint")
    try:
        model.load_state_dict(torch.load(root / "model.pt", map_location="cpu", weights_only=True))
        trainer = torch.load(root / "trainer.pt", map_location="cpu", weights_only=False)
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        torch.set_rng_state(trainer["torch_rng"])
        random.setstate(trainer["python_rng"])
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        raise StateError(f"checkpoint {root} cannot be read: {exc}") from exc
    return manifest
