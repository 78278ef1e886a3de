"""Output folders written whole: a run's files appear together, and no file of an earlier run
that this run did not write stays behind to be read as if it belonged to it.

Writers write into a hidden staging folder inside the target (the same filesystem, so a rename
moves a file without copying). On success every staged file is renamed into place, under a lock
so that two runs committing into one folder do not interleave; then the files that the previous
run listed in the folder's manifest and this run did not write are deleted, and the manifest
lists this run's files. Files hetsim never wrote are left alone. A run that fails or is killed
before the commit leaves the earlier outputs as they were.

Depends on :mod:`hetsim.errors` only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from hetsim.errors import InputError

__all__ = ["MANIFEST", "Staging", "prepare", "staged"]

MANIFEST = ".hetsim-outputs.json"  # the files the last run committed, relative to the folder
_LOCK = ".hetsim-outputs.lock"
_STAGING_PREFIX = ".hetsim-staging-"
_active: set[Path] = set()  # staging folders open in this process (nested writers reuse them)


def prepare(out: str | Path, field: str = "--out") -> Path:
    """The folder ``out``, created if missing; an input error when it cannot hold outputs (an
    existing file or device, a folder that cannot be created or written)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(
            "names an existing file or device, not a folder",
            field=field,
            value=str(out),
            allowed="a folder to write into (created if missing)",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(out, field, f"cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise _unwritable(out, field, "cannot write in the folder (permission denied)")
    return out


class Staging:
    """Where writers put a run's files (``dir``) before they move to ``out``."""

    def __init__(self, out: Path, dir_: Path) -> None:
        self.out = out
        self.dir = dir_

    def final(self, paths: Iterable[Path]) -> list[Path]:
        """Where staged ``paths`` live once committed."""
        return [self.out / Path(p).relative_to(self.dir) for p in paths]


@contextmanager
def staged(out: str | Path, field: str = "--out") -> Iterator[Staging]:
    """Stage a run's outputs for ``out`` and commit them when the block ends without error;
    on an error the staged files are removed and ``out`` is left as it was. Inside an open
    staging folder (a writer called by a caller that stages) it writes there directly."""
    out = Path(out)
    if out.resolve() in _active:
        yield Staging(out, out)
        return
    out = prepare(out, field)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=out))
    except OSError as exc:
        raise _unwritable(out, field, f"cannot write in the folder ({exc.strerror})") from None
    _active.add(tmp.resolve())
    try:
        yield Staging(out, tmp)
        _commit(out, tmp)
    except OSError as exc:
        raise _unwritable(out, field, f"writing failed ({exc.strerror})") from None
    finally:
        _active.discard(tmp.resolve())
        shutil.rmtree(tmp, ignore_errors=True)


def _commit(out: Path, tmp: Path) -> None:
    names = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
    with open(out / _LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        previous = _manifest(out)
        for name in names:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / name, out / name)
        for name in sorted(set(previous) - set(names)):
            (out / name).unlink(missing_ok=True)
        manifest = tmp / MANIFEST
        manifest.write_text(json.dumps(names, indent=1) + "\n")
        os.replace(manifest, out / MANIFEST)


def _manifest(out: Path) -> list[str]:
    """The previous run's files; names that could leave the folder are ignored, so a damaged
    or hand-edited manifest never deletes anything outside it."""
    try:
        names = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    safe = []
    for name in names:
        parts = PurePosixPath(name).parts if isinstance(name, str) else ("..",)
        if parts and ".." not in parts and not PurePosixPath(name).is_absolute():
            safe.append(name)
    return safe


def _unwritable(out: Path, field: str, message: str) -> InputError:
    return InputError(message, field=field, value=str(out), allowed="a folder you can write to")
