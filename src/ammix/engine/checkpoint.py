"""Checkpoints: atomic writes, clear errors on unreadable files, every random state.

A checkpoint (``last.pt``) is a dict of plain containers and tensors, so it loads with
``torch.load(weights_only=True)``: model, optimizer, scheduler, grad-scaler and mixer-generator states,
the epoch count, the best metrics so far, and the RNG states of torch (CPU and CUDA), numpy and python.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (truncated, corrupt) or does not fit the model."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, ``os.replace``."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it onto
    ``path`` (and fsync the folder): a reader sees the old file or the new one, never a partial one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temps(folder: str | Path) -> None:
    """Delete temp files an interrupted ``atomic_write`` left behind."""
    for p in Path(folder).glob(".*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save(state)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint on the CPU; a missing, truncated or corrupt file raises ``CheckpointError``
    naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): it is truncated or corrupt "
            f"({type(exc).__name__}: {first[:200]}); restore it, or start afresh with --fresh"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} holds no model state: not an ammix checkpoint")
    return state


def rng_states() -> dict[str, Any]:
    """Every global random state: torch CPU (and CUDA), numpy, python ``random``."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        cuda = states["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's ``last.pt``."""
    path = Path(path)
    if path.is_dir():
        return path / "last.pt"
    return path


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex): which checkpoint a transfer stage started from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_backbone(model: torch.nn.Module, path: str | Path) -> int:
    """Load the stages' weights of a checkpoint (file or run folder) into ``model``; the head stays as
    it is (freshly initialised for the new classes). Returns the number of tensors loaded."""
    file = resolve_checkpoint(path)
    state = load_checkpoint(file)["model"]
    stages = {k: v for k, v in state.items() if k.startswith("stages.")}
    if not stages:
        raise CheckpointError(f"checkpoint {file} holds no backbone stages (keys 'stages.*')")
    own = {k: v for k, v in model.state_dict().items() if k.startswith("stages.")}
    missing = sorted(set(own) - set(stages))
    unexpected = sorted(set(stages) - set(own))
    shape = [k for k in own if k in stages and own[k].shape != stages[k].shape]
    if missing or unexpected or shape:
        what = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape mismatch at {shape[:3]}"
        )
        raise CheckpointError(
            f"model.init_from: checkpoint {file} does not fit this backbone ({what}); same model and options?"
        )
    model.load_state_dict(stages, strict=False)
    return len(stages)
