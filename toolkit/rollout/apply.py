"""Putting one generation's files in place on a host: stage, check, swap, and undo.

Every changed file is first written next to its destination as `NAME.kgt-new`, with its
owner and mode set before a byte is written and fsynced; then each file's check command
runs against the staged generation (a check that names another file of the generation —
HAProxy's `crt` — reads that file's staged copy). Only when every check passes are the
files renamed over their destinations, each rename atomic, after a journal naming them
was written: an agent killed at any moment leaves every managed file either old or new,
and on its next start it finishes the journal's renames (or, with no journal, throws the
staged copies away). The files a generation replaces are kept in the agent's state
folder, so a service that does not come back healthy gets its previous files back.

A missing or altered content is an error, never an empty file: the caller hands over
contents whose SHA-256 it has checked against the manifest.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.files import sync_folder, write_atomic
from toolkit.rollout.manifest import Entry, digest

STAGED = ".kgt-new"
CHECK_TIMEOUT = 60.0  # s a check command may take (mariadbd --help --verbose is the slowest)


@dataclass(frozen=True)
class CheckFailed:
    """A staged file its check refused: which file, which check, what it said."""

    path: str
    check: str
    message: str

    def describe(self) -> str:
        """One line for status and logs (the check as run on the file, the staged copy named as its destination)."""
        shown = self.check.replace("{file}", self.path).replace("{python}", "python3")
        return f"{self.path}: check `{shown}` failed: {self.message}"


def on_disk(root: Path, path: str) -> Path:
    """Where `path` (absolute on the host) is under `root` (`/` on a real host)."""
    return root / path.lstrip("/")


def sha_of(file: Path) -> str | None:
    """The SHA-256 of a file's content; None when it does not exist or cannot be read."""
    try:
        return digest(file.read_bytes())
    except OSError:
        return None


def in_place(root: Path, entry: Entry) -> bool:
    """Whether the file is there with the entry's content, mode and owner."""
    file = on_disk(root, entry.path)
    try:
        stat = file.stat()
    except OSError:
        return False
    uid, _ = _ids(entry.owner)
    owner_ok = os.geteuid() != 0 or stat.st_uid == uid
    return stat.st_mode & 0o7777 == entry.mode and owner_ok and sha_of(file) == entry.sha256


def _ids(owner: str) -> tuple[int, int]:
    """uid and gid of `owner` (its primary group); the agent's own when the user does not exist here."""
    try:
        entry = pwd.getpwnam(owner)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return os.getuid(), os.getgid()


def stage(root: Path, entry: Entry, content: bytes) -> Path:
    """Write `content` as the staged copy of `entry`, owner and mode set before the content; fsynced."""
    target = on_disk(root, entry.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + STAGED)
    staged.unlink(missing_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        uid, gid = _ids(entry.owner)
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, entry.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def run_checks(entries: Sequence[Entry], staged: Mapping[str, Path]) -> CheckFailed | None:
    """Each staged file's check; the first refusal, or None when all pass."""
    for entry in entries:
        if entry.check is None or entry.path not in staged:
            continue
        checked = _with_staged_references(staged[entry.path], staged)
        command = entry.check.format(file=shlex.quote(str(checked)), python=shlex.quote(sys.executable))
        try:
            result = subprocess.run(
                ["sh", "-c", command], capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            return CheckFailed(entry.path, entry.check, f"no answer within {CHECK_TIMEOUT:.0f}s")
        finally:
            if checked != staged[entry.path]:
                checked.unlink(missing_ok=True)
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()
            return CheckFailed(entry.path, entry.check, " | ".join(said[-3:])[:500])
    return None


def _with_staged_references(file: Path, staged: Mapping[str, Path]) -> Path:
    """`file` itself, or a copy of it in which the destinations of other staged files name their staged copies."""
    text = file.read_bytes()
    swapped = text
    for path, copy in staged.items():
        if copy != file:
            swapped = swapped.replace(path.encode(), str(copy).encode())
    if swapped == text:
        return file
    probe = file.with_name(file.name + ".check")
    write_atomic(probe, swapped, 0o600)
    return probe


@dataclass(frozen=True)
class Journal:
    """The swap in progress: which generation, which files (destination paths) are being renamed in."""

    generation: int
    paths: tuple[str, ...]

    @staticmethod
    def file(state_dir: Path) -> Path:
        """Where it is kept."""
        return state_dir / "journal.json"

    def write(self, state_dir: Path) -> None:
        """Durably, before the first rename."""
        data = json.dumps({"generation": self.generation, "paths": list(self.paths)}).encode()
        write_atomic(self.file(state_dir), data, 0o600)

    @classmethod
    def read(cls, state_dir: Path) -> Journal | None:
        """The journal a killed agent left, if any."""
        try:
            data = json.loads(cls.file(state_dir).read_text())
            return cls(int(data["generation"]), tuple(str(p) for p in data["paths"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable journal names nothing: the staged copies are thrown away

    @classmethod
    def clear(cls, state_dir: Path) -> None:
        """Once every rename and the state are durable."""
        cls.file(state_dir).unlink(missing_ok=True)


def keep_previous(root: Path, state_dir: Path, paths: Sequence[str]) -> None:
    """Copy the files about to be replaced (or note that they did not exist) for a rollback."""
    previous = state_dir / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    absent = []
    for path in paths:
        source = on_disk(root, path)
        if not source.exists():
            absent.append(path)
            continue
        copy = previous / path.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
        stat = source.stat()
        if os.geteuid() == 0:
            os.chown(copy, stat.st_uid, stat.st_gid)
    write_atomic(previous / ".absent.json", json.dumps(absent).encode(), 0o600)


def swap(root: Path, paths: Sequence[str]) -> None:
    """Rename every staged copy that is still there over its destination; fsync each folder."""
    folders = set()
    for path in paths:
        target = on_disk(root, path)
        staged = target.with_name(target.name + STAGED)
        if staged.exists():
            os.replace(staged, target)
            folders.add(target.parent)
    for folder in folders:
        sync_folder(folder)


def restore_previous(root: Path, state_dir: Path, paths: Sequence[str]) -> None:
    """Put back the files `keep_previous` kept (a file that did not exist before is removed again)."""
    previous = state_dir / "previous"
    try:
        absent = set(json.loads((previous / ".absent.json").read_text()))
    except (OSError, ValueError):
        absent = set()
    for path in paths:
        target = on_disk(root, path)
        copy = previous / path.lstrip("/")
        if path in absent:
            target.unlink(missing_ok=True)
        elif copy.exists():
            staged = target.with_name(target.name + STAGED)
            shutil.copy2(copy, staged)
            stat = copy.stat()
            if os.geteuid() == 0:
                os.chown(staged, stat.st_uid, stat.st_gid)
            os.replace(staged, target)
        sync_folder(target.parent)


def discard_staged(root: Path, paths: Sequence[str]) -> None:
    """Remove staged copies no journal names (a check failed, or the agent died before the swap)."""
    for path in paths:
        target = on_disk(root, path)
        target.with_name(target.name + STAGED).unlink(missing_ok=True)
        target.with_name(target.name + STAGED + ".check").unlink(missing_ok=True)
