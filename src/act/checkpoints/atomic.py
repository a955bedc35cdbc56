"""Crash-safe writing of a model: a directory of model files, or a single file (`.keras`).

Every writer of a model (`act convert`, both frameworks' `save_pretrained`) goes through `transaction`:

1. **Lock.** ``.<DEST>.act-lock`` next to DEST (next to what DEST resolves to, through symlinks), held with `fcntl.flock` for the whole run: a second writer of the
   same DEST fails at once with `DestinationBusy` (the kernel drops the lock of a killed process, so a lock is never
   stale). The lock file is removed when the writer is done.
2. **Recover.** Leftovers of a killed run on this DEST (staging directories, recognised by their name and the
   marker file `.act-owner` inside) are finished (an interrupted commit is rolled forward) or removed.
3. **Stage.** The new model is written into a fresh staging directory: ``DEST/.act-staging-<id>/new/`` when DEST is
   an existing directory (the same file system as DEST, so the final moves are renames), else
   ``.<DEST>.act-staging-<id>/`` next to DEST. Until the commit, DEST is not touched at all.
4. **Commit.** A new DEST is one `rename` of the staged directory (or file): atomic. An existing directory keeps its
   identity and every entry that is not part of the model; its model files are replaced as a set: a journal
   (``COMMIT``: the old model files to move out, the new ones to move in) is written and synced first, then the old
   files are moved into the staging directory and the new ones into DEST, then the staging directory is removed.
   A run killed after the journal was written is rolled forward by the next writer (or `recover`); a run killed
   before leaves DEST untouched. While a journal is pending, `pending_commit` says so and the loaders refuse the
   directory (`act.checkpoints.files.detect`) instead of reading a mix of old and new files.

Only entries this module created (by name and marker) are ever removed; the old model files that a commit replaces
are the only files of DEST it deletes, and `replaces` (given by the caller) says which names those are.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

MARKER = ".act-owner"  # JSON inside every staging directory this module creates
STAGING_PREFIX = ".act-staging-"  # DEST/.act-staging-<id> (inside an existing DEST) or .<DEST>.act-staging-<id>
LOCK_SUFFIX = ".act-lock"  # .<DEST>.act-lock, next to DEST
JOURNAL = "COMMIT"
NEW, OLD, SCRATCH = "new", "old", "scratch"
# Tests only: seconds slept at each step of a commit, so that a test can kill the process in the middle of it.
DELAY_ENV = "ACT_TEST_COMMIT_DELAY"


class DestinationBusy(FileExistsError):
    """Another process is writing the same destination right now."""


class InterruptedCommit(RuntimeError):
    """A commit could not be completed; the journal stays, and the next writer (or `recover`) finishes it."""


def _pause() -> None:
    delay = os.environ.get(DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/file system can sync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush every file below `path` (and the directories) to disk: the journal must never point at empty files."""
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                fd = os.open(Path(root) / name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_directory(Path(root))


def default_file_mode() -> int:
    """The mode a new file gets from `open` under the process's umask (0o666 & ~umask). A file written aside with
    `tempfile.mkstemp` is private (0o600): chmod it to this before it is put in place. (Reading the umask sets it
    for an instant: not safe against another thread creating files at that moment.)"""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_json_atomically(path: Path, value) -> None:
    """`path` holds the complete JSON or is absent (or its previous version): `write_files`."""
    write_files({path: json.dumps(value, indent=2, sort_keys=True)})


# ----------------------------------------------------------------------------------------------------------
# Single files, and sets of files written all or none
# ----------------------------------------------------------------------------------------------------------

TEMPORARY_MARK = ".act-tmp-"  # .<NAME>.act-tmp-<id><suffix>, next to NAME: a file being written
BACKUP_MARK = ".act-old-"  # .<NAME>.act-old-<id>: the previous NAME while a set of files is put in place
# Errors that can only mean the writing failed (whatever file the error names)
WRITE_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EIO")
                         if hasattr(errno, name))
# how Rust (safetensors, tokenizers: `Os { code: 28, ... }`, `(os error 28)`) and Python (`[Errno 28]`) spell an
# operating-system error inside another error's text
_OS_CODE = re.compile(r"(?:Os \{ code: |\(os error |\[Errno )(\d+)")


class WriteError(OSError):
    """Writing an output failed (a full disk, a read-only file system, no permission...). The message names the
    path; the previous file (if any) is as it was and nothing of the attempt is left (`writing`). `paths`: the
    files of the set being written, `filename`: the one that failed (when known)."""

    def __init__(self, paths, error: BaseException, kept: bool | None = None, failed=None):
        code = getattr(error, "errno", None)
        reason = getattr(error, "strerror", None) or (os.strerror(code) if code else None) or str(error)
        super().__init__(code, reason)
        self.paths = [Path(path) for path in paths]
        failed = self.paths[0] if failed is None and len(self.paths) == 1 else failed
        self.filename = None if failed is None else str(failed)
        self.reason = reason
        self.kept = kept

    def __str__(self) -> str:
        names = ", ".join(str(path) for path in self.paths)
        if len(self.paths) > 1:
            where = f"{self.filename} (one of {names})" if self.filename else names
            after = "" if self.kept is None else "; none of them was changed (written all or none)"
        else:
            where = names
            after = "" if self.kept is None else \
                "; it is unchanged" if self.kept else "; nothing was written"
        return f"cannot write {where}: {self.reason}{after}"


def os_error(error: BaseException) -> OSError | None:
    """`error` as an OSError: itself, or a library's error that carries an operating-system error code in its text
    (safetensors' `SafetensorError: ... Os { code: 28, ... }`, h5py's `[Errno 28]`); None for any other error."""
    if isinstance(error, OSError):
        return error
    match = _OS_CODE.search(str(error))
    if match is None or type(error).__module__.split(".")[0] in ("builtins", "json"):
        return None
    code = int(match.group(1))
    return OSError(code, os.strerror(code))


def is_write_failure(error: BaseException, written=()) -> bool:
    """Whether `error` (raised while files were being written) means the writing itself failed: a full disk, a
    read-only file system, or an OSError about one of the files being `written`."""
    error = os_error(error)
    if error is None:
        return False
    if error.errno in WRITE_ERRNOS:
        return True
    names = {str(path) for path in written}
    return bool(error.filename) and (str(error.filename) in names or any(
        str(error.filename).startswith(f"{name}{os.sep}") for name in names))


def _temporary_name(target: Path) -> Path:
    suffix = "".join(target.suffixes[-1:])  # the extension stays last: writers that pick a format by it
    return target.with_name(f".{target.name}{TEMPORARY_MARK}{uuid.uuid4().hex[:12]}{suffix}")


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path | None) -> None:
    if path is not None and os.path.lexists(path):
        with contextlib.suppress(OSError):  # the cleaning never hides the error being reported
            os.unlink(path)


def _link_new(temporary: Path, target: Path) -> None:
    """Put `temporary` at `target` unless something is there (then FileExistsError): never replaces a file that
    appeared while it was being written."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "appeared while it was being written; not replacing it",
                              str(target)) from None
    except OSError as error:
        if error.errno in WRITE_ERRNOS:
            raise
        if target.exists() or target.is_symlink():  # a file system without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "appeared while it was being written; not replacing it",
                                  str(target)) from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)


@contextlib.contextmanager
def writing(paths, overwrite: bool = True) -> Iterator[list[Path]]:
    """Write a set of files all or none: yields one temporary path per target (next to it, same file system,
    same extension); the caller writes each of them (by name: `open`, `savefig`, an exporter...). When the block
    ends, every temporary file is synced and put in place, so each target holds its complete new version; if the
    block or the putting in place fails, the targets keep their previous versions (new ones are not created) and
    no temporary file is left.

    A target that exists keeps its permissions; a new one gets the default mode (`default_file_mode`). A target
    that is a symbolic link has the file it points to replaced. `overwrite=False`: a target that exists (or
    appears meanwhile) is a FileExistsError, never replaced. Any OSError of the writing (a full disk, a read-only
    file system, no permission) is a `WriteError` naming the target(s)."""
    targets = [Path(os.path.realpath(os.path.abspath(path))) for path in paths]
    if len(set(targets)) != len(targets):
        raise ValueError(f"the same file is given twice among {', '.join(str(p) for p in paths)}")
    existed = [target.exists() for target in targets]
    for target, there in zip(targets, existed):
        if there and target.is_dir():
            raise IsADirectoryError(errno.EISDIR, f"is a directory; not replacing it with a file", str(target))
        if there and not overwrite:
            raise FileExistsError(errno.EEXIST, "already exists; not replacing it", str(target))
    temporaries: list[Path] = []
    backups: dict[Path, Path] = {}
    placed: list[Path] = []
    try:
        for target in targets:
            temporary = _temporary_name(target)
            temporaries.append(temporary)  # before it exists: an error creating it is about this target
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield list(temporaries)
        for target, temporary, there in zip(targets, temporaries, existed):
            if not temporary.is_file():
                raise RuntimeError(f"{target}: the writer removed its temporary file {temporary}")
            _sync_file(temporary)
            os.chmod(temporary, (target.stat().st_mode & 0o7777) if there and target.exists()
                     else default_file_mode())
        if len(targets) > 1:  # the previous versions stay reachable until every new file is in place
            for target in targets:
                if target.exists():
                    backup = target.with_name(f".{target.name}{BACKUP_MARK}{uuid.uuid4().hex[:12]}")
                    try:
                        os.link(target, backup)
                    except FileExistsError:
                        raise
                    except OSError as error:  # a file system without hard links: no way back, only forward
                        if error.errno in WRITE_ERRNOS:
                            raise
                        continue
                    backups[target] = backup
        for target, temporary in zip(targets, temporaries):
            if overwrite:
                os.replace(temporary, target)
            else:
                _link_new(temporary, target)
            placed.append(target)
        for directory in dict.fromkeys(target.parent for target in targets):
            _fsync_directory(directory)
    except BaseException as error:
        for target in placed:  # a set: the ones already in place go back to their previous versions
            if target in backups:
                with contextlib.suppress(OSError):
                    os.replace(backups.pop(target), target)
            elif not existed[targets.index(target)] or not overwrite:
                _unlink_quietly(target)
        for path in [*temporaries, *backups.values()]:
            _unlink_quietly(path)
        failure = os_error(error) if isinstance(error, Exception) else None
        if isinstance(error, FileExistsError):
            failure = None  # overwrite=False: the target is there (named by the error), not a failed write
        if isinstance(error, WriteError) and error.filename not in {str(t) for t in temporaries}:
            failure = None  # a nested writer's own report (one of ours is renamed to the file the user named)
        if failure is not None and is_write_failure(failure, [*targets, *temporaries]):
            names = {str(target): target for target in targets}
            names.update({str(temporary): target for temporary, target in zip(temporaries, targets)})
            named = names.get(str(failure.filename)) if failure.filename else None
            raise WriteError(targets, failure, kept=existed[0] if len(targets) == 1 else True,
                             failed=named) from error
        raise
    for backup in backups.values():
        _unlink_quietly(backup)


@contextlib.contextmanager
def writing_file(path, overwrite: bool = True) -> Iterator[Path]:
    """`writing` of one file: yields the temporary path to write; the target is the complete new file or its
    previous version, never a part."""
    with writing([path], overwrite=overwrite) as (temporary,):
        yield temporary


def write_files(contents: dict, overwrite: bool = True) -> None:
    """Write {path: text or bytes} all or none (`writing`); text is written as UTF-8, newlines as given."""
    paths = list(contents)
    with writing(paths, overwrite=overwrite) as temporaries:
        for temporary, data in zip(temporaries, contents.values()):
            try:
                with open(temporary, "wb") as stream:
                    stream.write(data.encode("utf-8") if isinstance(data, str) else bytes(data))
            except OSError as error:
                if error.filename is None:  # write() and close() name no file: this one failed
                    error.filename = str(temporary)
                raise


# ----------------------------------------------------------------------------------------------------------
# The lock
# ----------------------------------------------------------------------------------------------------------


def lock_path(dest: Path) -> Path:
    """The lock file of `dest`, next to the directory or file that `dest` really is: two spellings of one DEST (a
    symlink to it, or to a directory above it) share one lock, so their writers never run at once (the second
    one's recovery would otherwise remove the first one's staging directory in the middle of its run)."""
    real = Path(os.path.realpath(dest))
    return real.parent / f".{real.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    """Hold the lock of `dest` or raise `DestinationBusy` at once."""
    path = lock_path(dest)
    try:
        import fcntl
    except ImportError:  # not POSIX: an exclusive create; a stale file of a dead process is taken over
        fcntl = None
    while True:
        if fcntl is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _holder(path)
                if holder is not None and _alive(holder):
                    raise DestinationBusy(_busy_message(dest, holder)) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            break
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DestinationBusy(_busy_message(dest, _holder(path))) from None
        # The previous holder unlinks the file before unlocking it: if we locked a file that is no longer at
        # `path`, another process may hold a fresh one there. Try again on the file that is there now.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _busy_message(dest: Path, holder: int | None) -> str:
    who = f"process {holder}" if holder else "another process"
    return (f"{dest}: {who} is writing it right now (act convert or save_pretrained); not touching it. "
            f"Run again when that one has finished")


# ----------------------------------------------------------------------------------------------------------
# Staging directories and recovery
# ----------------------------------------------------------------------------------------------------------


def _marker(staging: Path) -> dict | None:
    try:
        return json.loads((staging / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _staging_candidates(dest: Path) -> list[Path]:
    """Staging directories that a run writing `dest` may have left: inside DEST and next to it."""
    found = []
    if dest.is_dir():  # a symlink to a directory too: the staging directory is inside its target
        found += [p for p in dest.iterdir() if p.name.startswith(STAGING_PREFIX)]
    if dest.parent.is_dir():
        found += [p for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}{STAGING_PREFIX}")]
    return sorted(p for p in found if p.is_dir() and not p.is_symlink())


def _ours(staging: Path, dest: Path) -> bool:
    marker = _marker(staging)
    return bool(marker) and marker.get("tool") == "act" and marker.get("dest") == dest.name


def pending_commit(directory: str | os.PathLike) -> Path | None:
    """The staging directory of an unfinished commit into `directory` (its files are a mix of the old and the new
    model until the commit is rolled forward), or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for staging in _staging_candidates(directory):
        if staging.parent == directory and _ours(staging, directory) and (staging / JOURNAL).is_file():
            journal = _read_journal(staging)
            if journal is None or any((staging / NEW / name).exists() for name in journal["new"]):
                return staging
    return None


def _read_journal(staging: Path) -> dict | None:
    try:
        journal = json.loads((staging / JOURNAL).read_text())
        return {"old": list(journal["old"]), "new": list(journal["new"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_staging(staging: Path) -> None:
    """Remove a staging directory; the journal and then the marker go last, so a removal that is itself killed
    leaves a directory that is still recognised (and whose journal, if any, is never left without its files)."""
    for name in (OLD, SCRATCH, NEW):
        target = staging / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            with contextlib.suppress(OSError):
                target.unlink()
    for entry in staging.iterdir() if staging.is_dir() else ():
        if entry.name not in (JOURNAL, MARKER):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
    for name in (JOURNAL, MARKER):
        with contextlib.suppress(FileNotFoundError):
            (staging / name).unlink()
    with contextlib.suppress(OSError):
        staging.rmdir()


def _roll_forward(staging: Path, dest: Path) -> None:
    """Finish the commit described by the journal in `staging`; safe to repeat after a kill at any point."""
    journal = _read_journal(staging)
    if journal is None:
        raise InterruptedCommit(f"{dest}: the commit journal {staging / JOURNAL} is unreadable; the model files of "
                                f"{dest} may be a mix of two versions: check them, then remove {staging}")
    old, new = staging / OLD, staging / NEW
    old.mkdir(exist_ok=True)
    # Every old file leaves DEST before the first new file enters it: if a new file has already moved, the old
    # ones are gone, and a file of the old list still in DEST is a new one that must stay.
    started = any(not (new / name).exists() and not (new / name).is_symlink() for name in journal["new"])
    if not started:
        for name in journal["old"]:
            if (dest / name).exists() or (dest / name).is_symlink():
                os.replace(dest / name, old / name)
                _pause()
    for name in journal["new"]:
        if (new / name).exists() or (new / name).is_symlink():
            os.replace(new / name, dest / name)
            _pause()
    _fsync_directory(dest)


def recover(dest: str | os.PathLike) -> list[str]:
    """Finish or undo what killed runs left for `dest` (call it with the lock held, or when no writer runs).

    An interrupted commit (journal written) is rolled forward: DEST gets the complete new model. Any other staging
    directory (the new model was not complete, or was already in place) is removed. Returns what was done."""
    dest = Path(dest)
    done = []
    for staging in _staging_candidates(dest):
        if not _ours(staging, dest):
            # Killed between creating it and completing its marker: it holds nothing but (part of) the marker.
            entries = list(staging.iterdir())
            if _marker(staging) is None and all(entry.is_file() and MARKER in entry.name for entry in entries):
                for entry in entries:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                with contextlib.suppress(OSError):
                    staging.rmdir()
                done.append(f"removed {staging.name}, left by a killed run")
            continue
        if staging.parent == dest and (staging / JOURNAL).is_file():
            _roll_forward(staging, dest)
            done.append(f"finished the interrupted replacement of the model files in {dest}")
        else:
            done.append(f"removed {staging.name}, left by a killed run")
        _remove_staging(staging)
    return done


# ----------------------------------------------------------------------------------------------------------
# The transaction
# ----------------------------------------------------------------------------------------------------------


class Transaction:
    """What a writer sees: `path` is where the new model goes (a fresh directory, or the file to create), `scratch`
    a directory for temporary work; both vanish with the transaction."""

    def __init__(self, dest: Path, staging: Path, kind: str):
        self.dest = dest
        self.staging = staging
        self.kind = kind
        self.path = staging / NEW if kind == "directory" else staging / NEW / dest.name
        self.scratch = staging / SCRATCH
        self.recovered: list[str] = []


def _check_dest(dest: Path, overwrite: bool, kind: str) -> None:
    if not (dest.exists() or dest.is_symlink()):
        return
    if not overwrite:
        raise FileExistsError(f"{dest}: already exists; pass --overwrite to replace it")
    if kind == "directory" and not dest.is_dir():
        raise FileExistsError(f"{dest}: exists and is not a directory; not replacing a file with a model directory")
    if kind == "file" and dest.is_dir():
        raise FileExistsError(f"{dest}: is a directory; not replacing it with a model file")


def _make_staging(dest: Path, kind: str) -> Path:
    token = f"{uuid.uuid4().hex[:12]}"
    inside = kind == "directory" and dest.is_dir()
    staging = dest / f"{STAGING_PREFIX}{token}" if inside else dest.parent / f".{dest.name}{STAGING_PREFIX}{token}"
    staging.mkdir()
    try:
        write_json_atomically(staging / MARKER, {"tool": "act", "dest": dest.name, "pid": os.getpid(),
                                                 "created": time.time(), "kind": kind})
        (staging / NEW).mkdir()
        (staging / SCRATCH).mkdir()
    except BaseException:  # a full disk: nothing of ours stays behind
        _remove_staging(staging)
        raise
    return staging


def _commit(transaction: Transaction, replaces: Callable[[str], bool], directories: bool = False) -> None:
    dest, staging = transaction.dest, transaction.staging
    new_dir = staging / NEW
    if transaction.kind == "file":
        if not transaction.path.is_file():
            raise RuntimeError(f"{dest}: nothing was written to {transaction.path}")
        _fsync_tree(new_dir)
        os.replace(transaction.path, dest)  # atomic: DEST is the old file or the new one
        _fsync_directory(dest.parent)
        return
    if staging.parent != dest:  # DEST did not exist when we started: one rename puts the whole model in place
        _fsync_tree(new_dir)
        try:
            os.rename(new_dir, dest)
        except OSError as error:  # DEST appeared meanwhile (and is not empty)
            raise FileExistsError(f"{dest}: appeared while the model was being written; not replacing it") from error
        _fsync_directory(dest.parent)
        return
    new_names = sorted(p.name for p in new_dir.iterdir())
    old_names = []
    for entry in sorted(dest.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(STAGING_PREFIX) or not (entry.name in new_names or replaces(entry.name)):
            continue
        if entry.is_dir() and not entry.is_symlink() and not directories:
            raise FileExistsError(f"{dest / entry.name}: is a directory where a model file goes; not replacing it")
        old_names.append(entry.name)
    _fsync_tree(new_dir)
    write_json_atomically(staging / JOURNAL, {"old": old_names, "new": new_names})
    _pause()
    try:
        _roll_forward(staging, dest)
    except OSError as error:
        raise InterruptedCommit(f"{dest}: replacing the model files failed half-way ({error}); the journal in "
                                f"{staging} lets the next save/convert into {dest} (or act.checkpoints.recover) "
                                f"finish it") from error


@contextlib.contextmanager
def transaction(dest: str | os.PathLike, overwrite: bool, kind: str = "directory",
                replaces: Callable[[str], bool] | None = None, directories: bool = False) -> Iterator[Transaction]:
    """Write a model to `dest` all or nothing (see the module docstring).

    kind: "directory" (write the files into `transaction.path`, a fresh directory) or "file" (write the file
    `transaction.path`). overwrite: replace an existing DEST (else `FileExistsError`, before anything is written).
    replaces(name): whether an existing entry of a DEST directory belongs to the model being replaced (entries with
    the name of a new file always do); every other entry is kept as it is. directories: the model has
    sub-directories of its own (a SavedModel's `variables/`, `assets/`), replaced like its files.
    """
    if kind not in ("directory", "file"):
        raise ValueError(f"kind must be 'directory' or 'file', got {kind!r}")
    dest = Path(os.path.abspath(dest))
    replaces = replaces or (lambda name: False)
    existed = dest.exists()
    written = [dest, lock_path(dest)]  # an OSError about these (or what is below them) is a failed write
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WriteError([dest], error, kept=existed) from error
        with locked(dest):
            recovered = recover(dest)
            _check_dest(dest, overwrite, kind)
            staging = _make_staging(dest, kind)
            written.append(staging)
            committed = False
            try:
                current = Transaction(dest, staging, kind)
                current.recovered = recovered
                yield current
                _check_dest(dest, overwrite, kind)  # re-checked: something else may have created DEST meanwhile
                _pause()
                _commit(current, replaces, directories)
                committed = True
            except InterruptedCommit:
                raise  # the journal stays: the directory is flagged, the next writer rolls it forward
            finally:
                if committed or not (staging / JOURNAL).is_file():
                    _remove_staging(staging)
    except (FileExistsError, WriteError, InterruptedCommit):
        raise
    except Exception as error:  # a full disk, a read-only file system, no permission: named, DEST untouched
        failure = os_error(error)
        if failure is not None and is_write_failure(failure, written):
            raise WriteError([dest], failure, kept=existed) from error
        raise


__all__ = ["DestinationBusy", "InterruptedCommit", "Transaction", "transaction", "recover", "pending_commit",
           "locked", "DELAY_ENV", "default_file_mode", "WriteError", "writing", "writing_file", "write_files",
           "os_error", "is_write_failure"]
