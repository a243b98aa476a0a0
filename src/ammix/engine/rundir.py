"""The run folder: config.yaml, metrics.jsonl, summary.json, last.pt (and tb/ for TensorBoard).

A folder that already holds a run is never overwritten silently: the caller chooses ``resume``
(continue from last.pt) or ``fresh`` (delete the run and start again). A folder in use by a training
still going (an earlier sweep's orphaned run, the same sweep started twice) is refused, not shared.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, the folder is not claimed
    fcntl = None

from .checkpoint import atomic_write

CONFIG, METRICS, SUMMARY, CHECKPOINT, TENSORBOARD, TRAIN_LOG = (
    "config.yaml",
    "metrics.jsonl",
    "summary.json",
    "last.pt",
    "tb",
    "train.log",  # written by a sweep, not by the training itself
)
ANALYSIS = "analysis.json"  # written by `ammix analyze` (a sweep, the toy) from a finished run's last.pt
_RUN_FILES = (CONFIG, METRICS, SUMMARY, CHECKPOINT)
# What a run and its analysis write: --fresh deletes these (and atomic writes' leftover temp files)
# and refuses a folder that holds anything else.
_WRITTEN = (*_RUN_FILES, TENSORBOARD, ANALYSIS)


def _written_by_a_run(name: str) -> bool:
    return name in _WRITTEN or (name.startswith(".") and name.endswith(".tmp"))


def foreign_entries(run_dir: Path) -> list[str]:
    """What a run folder holds that no run writes (``train.log`` is a sweep's, and kept)."""
    return sorted(p.name for p in run_dir.iterdir() if not _written_by_a_run(p.name) and p.name != TRAIN_LOG)


class RunDirError(ValueError):
    """The run folder cannot be used as asked (it holds a run and neither resume nor fresh was given)."""


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in _RUN_FILES)


def check_run_dir(run_dir: Path, resume: bool, fresh: bool) -> None:
    """Refuse (``RunDirError``) what would silently overwrite or misuse a folder. Reads only."""
    if resume and fresh:
        raise RunDirError("--resume and --fresh exclude each other: continue the run, or start it again")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run folder {run_dir} exists and is not a folder")
    if holds_run(run_dir) and not (resume or fresh):
        raise RunDirError(
            f"run folder {run_dir} already holds a run; pass --resume to continue it from its last "
            f"checkpoint, or --fresh to delete it and start again (or choose another --run-dir)"
        )
    if fresh and holds_run(run_dir):
        here = Path.cwd().resolve()
        target = run_dir.resolve()
        if target == here or target in here.parents or target == Path.home().resolve():
            raise RunDirError(
                f"--fresh would delete {run_dir}, which holds the working folder; use a subfolder"
            )
        foreign = foreign_entries(run_dir)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise RunDirError(
                f"--fresh would delete the run in {run_dir}, but the folder also holds {shown}, which no "
                f"run writes; move them out, or choose another --run-dir"
            )


@contextlib.contextmanager
def claim_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` (created if missing) for this process while the block runs: two trainings in
    one folder would interleave their checkpoints and metrics lines without an error. An advisory lock
    (``flock``) on the folder itself, released when the process ends, however it ends;
    ``RunDirError`` when another process holds it. A folder it created and left empty (a run that
    failed before writing anything) is removed again."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY) if fcntl else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(
                    f"run folder {run_dir} is in use by another training process (still running "
                    f"there); stop it first, or choose another --run-dir"
                ) from None
        yield
    finally:
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()
        if fd is not None:
            os.close(fd)


def wipe_run_dir(run_dir: Path) -> None:
    """Delete what an old run wrote in its folder (for ``--fresh``), keeping the folder itself, whose
    claim (:func:`claim_run_dir`) this process holds, ``train.log``, where a sweep (or a shell
    redirect) is already appending this process's output, and anything no run writes (which
    :func:`check_run_dir` refuses up front)."""
    for path in run_dir.iterdir():
        if not _written_by_a_run(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(_json_safe(data), indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def append_metrics(run_dir: Path, record: dict) -> None:
    """Append one epoch's line to metrics.jsonl."""
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(_json_safe(record)) + "\n")
        f.flush()


def read_metrics(run_dir: Path) -> list[dict]:
    """The complete lines of metrics.jsonl (a torn last line, from a kill mid-write, is skipped)."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Keep only the lines of epochs up to ``epochs_done`` (the checkpoint's), so that a resumed run's
    file equals an uninterrupted run's."""
    path = run_dir / METRICS
    if not path.exists():
        return
    kept = [r for r in read_metrics(run_dir) if r.get("epoch", math.inf) <= epochs_done]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
