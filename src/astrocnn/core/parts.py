"""Re-runnable outputs: long jobs keep their finished work in parts beside the output until it is complete.

``astrocnn prepare`` works through its inputs in parts of ``part_size`` inputs (default 2048). Each finished
part is written atomically into a work folder beside the output::

    OUT.h5.parts/
        manifest.json     what the parts are for: the settings and one key per part
        part-00000.h5     a finished part: its rows, its rejected inputs, the key of its inputs
        whitener.npz      other finished steps (prepare g2net: the fitted whitening spectrum)
        .lock             held by the running process, so two runs never share the folder

Rules:

- A part is reused only if the manifest's settings equal this run's and the part's own key equals the key
  of the inputs it is for now (their paths, sizes and modification times, and their labels). Parts made
  with other settings are all discarded, parts whose inputs changed are redone; each with a log line.
  Nothing is ever mixed silently.
- When every part exists they are merged into ``OUT`` (written under a temporary name and renamed), then
  the folder is removed. ``OUT`` appears only complete, and an interrupted run (Ctrl-C, ``kill -9``, a
  full disk) leaves only the folder, which the next run with the same arguments continues from.
- ``OUT`` records a fingerprint of its inputs and settings (attribute ``input_fingerprint``): running the
  same command again when ``OUT`` is up to date does nothing (``force=True`` prepares it again).

Core layer: knows no domain, no task and no trainer.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from astrocnn.core.errors import OutputError
from astrocnn.core.h5sets import STR, AtomicH5Writer, read_strings
from astrocnn.core.io import atomic_path, describe_os_error, write_text_atomic
from astrocnn.version import __version__

log = logging.getLogger(__name__)

PARTS_FORMAT = "astrocnn-parts"
PARTS_VERSION = 1
DEFAULT_PART_SIZE = 2048
#: attribute of a finished output: the fingerprint of the inputs and settings it was made from
FINGERPRINT_ATTR = "input_fingerprint"



@dataclass
class PrepareReport:
    """What a prepare or simulate run kept and rejected."""

    out: Path
    kept: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file or id, reason)
    rejects_csv: Path | None = None
    skipped: int = 0  # inputs already done by an interrupted run, not prepared again
    up_to_date: bool = False  # the output was already complete for these inputs: nothing was done
    unit: str = "spectra"  # what a kept row is, for the summary line

    @property
    def summary(self) -> str:
        text = f"{self.out}: kept {self.kept} {self.unit}, rejected {len(self.rejected)}"
        if self.rejects_csv is not None and self.rejected:
            text += f" (reasons in {self.rejects_csv})"
        if self.up_to_date:
            text += "; already up to date, nothing done (--force prepares it again)"
        elif self.skipped:
            text += f"; {self.skipped} inputs were already done by an interrupted run"
        return text

    def write_rejects(self) -> None:
        """Write the rejected inputs with their reasons to :attr:`rejects_csv` (atomically), or remove an
        earlier list when nothing was rejected."""
        if self.rejects_csv is None:
            return
        if not self.rejected:
            self.rejects_csv.unlink(missing_ok=True)
            return
        with atomic_path(self.rejects_csv) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["input", "reason"])
                w.writerows(self.rejected)


def rejects_path(out: str | os.PathLike) -> Path:
    """``FILE.h5`` -> ``FILE.rejects.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".rejects.csv")


def read_rejects(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The ``(input, reason)`` rows of a rejects list (empty when there is none)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [(r["input"], r["reason"]) for r in csv.DictReader(fh)]
    except (OSError, KeyError, csv.Error):
        return []


def parts_dir(out: str | os.PathLike) -> Path:
    """``OUT.h5`` -> ``OUT.h5.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def file_signature(path: str | os.PathLike) -> list:
    """``[absolute path, size, modification time in ns]``: what says a file is still the one it was."""
    p = Path(path)
    st = p.stat()
    return [str(p.resolve()), int(st.st_size), int(st.st_mtime_ns)]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def canonical(obj: Any) -> Any:
    """``obj`` as plain JSON data (tuples become lists, numpy values Python ones)."""
    return json.loads(json.dumps(obj, default=_plain, allow_nan=True))


def fingerprint(obj: Any) -> str:
    """SHA-256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, default=_plain, allow_nan=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def output_fingerprint(path: str | os.PathLike) -> str | None:
    """The ``input_fingerprint`` a finished output records (None if absent or unreadable)."""
    try:
        with h5py.File(path, "r") as h5:
            value = h5.attrs.get(FINGERPRINT_ATTR)
    except (OSError, RuntimeError, ValueError, KeyError):
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return None if value is None else str(value)


class _PartWriter(AtomicH5Writer):
    """One part: whole columns, the rejected inputs, and the part's key."""

    row_name = "rows (part)"
    log_level = logging.DEBUG

    def __init__(self, path: Path, columns: Mapping[str, np.ndarray], rejected: Sequence[tuple[str, str]],
                 attrs: Mapping[str, Any]):
        self._open(path)
        try:
            self._guard(self._write, columns, rejected, attrs)
        except BaseException:
            self._discard()
            raise

    def _write(self, columns, rejected, attrs) -> None:
        h5 = self._h5
        n = None
        for name, values in columns.items():
            arr = np.asarray(values)
            if arr.dtype.kind in ("U", "S", "O"):
                arr = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()], dtype=object)
                h5.create_dataset(name, data=arr, dtype=STR)
            else:
                h5.create_dataset(name, data=arr)
            n = len(arr) if n is None else n
        h5.create_dataset("rejected/input", data=np.array([str(r[0]) for r in rejected], dtype=object), dtype=STR)
        h5.create_dataset("rejected/reason", data=np.array([str(r[1]) for r in rejected], dtype=object), dtype=STR)
        for k, v in attrs.items():
            h5.attrs[k] = v
        self._n = int(n or 0)


class Parts:
    """The work folder of one re-runnable output. Use as a context manager::

        with Parts(out, settings, part_keys, part_sizes=sizes) as parts:
            if parts.up_to_date: ...            # nothing to do
            for i in parts.todo: parts.write(i, columns, rejected)
            ... merge parts.read(i) for every i into out, with attrs {FINGERPRINT_ATTR: parts.key} ...
            parts.complete()                    # the folder is removed on leaving the block

    settings : everything the output depends on besides the inputs (JSON data; versions included).
    part_keys : one key per part, a fingerprint of that part's inputs.
    part_sizes : inputs per part, for the log lines.
    force : discard finished parts and treat an existing output as out of date.
    """

    def __init__(self, out: str | os.PathLike, settings: Mapping[str, Any], part_keys: Sequence[str], *,
                 part_sizes: Sequence[int] | None = None, force: bool = False, what: str = "inputs",
                 siblings: Iterable[str | os.PathLike] = ()):
        self.out = Path(out)
        self.dir = parts_dir(self.out)
        self.settings = canonical({**settings, "parts_format": PARTS_VERSION})
        self.part_keys = [str(k) for k in part_keys]
        self.part_sizes = list(part_sizes) if part_sizes is not None else [1] * len(self.part_keys)
        self.force = force
        self.what = what
        self.siblings = [self.out, *map(Path, siblings)]
        self.key = fingerprint({"settings": self.settings, "parts": self.part_keys})
        self.up_to_date = False
        self.done: set[int] = set()
        self._lock_fd: int | None = None
        self._remove = False

    # ------------------------------------------------------------------------------------------ layout
    @property
    def n(self) -> int:
        return len(self.part_keys)

    def path(self, i: int) -> Path:
        return self.dir / f"part-{i:05d}.h5"

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    @property
    def todo(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.done]

    @property
    def all_done(self) -> bool:
        return len(self.done) == self.n

    # ------------------------------------------------------------------------------------------ enter/exit
    def __enter__(self) -> "Parts":
        had_folder = self.dir.is_dir()
        manifest = self._read_manifest() if had_folder else None
        if had_folder:
            self._refuse_foreign(manifest)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot write here ({describe_os_error(exc)})") from exc
        self._lock()
        try:
            self._clean_partials()
            same = manifest is not None and self._same_settings(manifest)
            if had_folder and self.force and self._has_parts():
                log.info("%s: discarding the finished parts in %s (--force)", self.out, self.dir)
                self._clear()
                same = False
            elif manifest is not None and not same:
                self._clear()
            if not self.force and output_fingerprint(self.out) == self.key:
                self.up_to_date = True
                # a run that stopped after writing OUT but before removing its parts leaves them here
                self.done = self._scan(quiet=True) if same else set()
                return self
            if self.out.exists():
                log.info("%s exists%s; it is replaced when the new one is complete", self.out,
                         ": preparing it again (--force)" if self.force else
                         " but was prepared from other inputs or settings")
            try:
                write_text_atomic(self.manifest_path, json.dumps({
                    "format": PARTS_FORMAT, "format_version": PARTS_VERSION, "output": self.out.name,
                    "astrocnn_version": __version__, "key": self.key, "settings": self.settings,
                    "part_sizes": self.part_sizes, "parts": self.part_keys}, indent=1) + "\n")
            except OutputError as exc:
                raise self._output_error(exc, self.manifest_path) from exc
            self.done = self._scan() if same else set()
            if self.done:
                n_done = sum(self.part_sizes[i] for i in self.done)
                log.info("%s: %d of %d %s already done in %s (%d of %d parts, from an interrupted run), skipped",
                         self.out, n_done, sum(self.part_sizes), self.what, self.dir, len(self.done), self.n)
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._unlock()
        if self._remove or (exc_type is not None and not self._has_parts()):
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        if exc_type is None:
            return
        n_done = sum(self.part_sizes[i] for i in self.done)
        how = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "stopped"
        log.warning("%s: %s; %d of %d parts (%d of %d %s) are done and kept in %s: run the same command again to "
                    "continue from there", self.out, how, len(self.done), self.n, n_done, sum(self.part_sizes),
                    self.what, self.dir)

    def complete(self) -> None:
        """The output is written: remove the folder on leaving the block."""
        self._remove = True

    discard = complete

    # ------------------------------------------------------------------------------------------ parts
    def write(self, i: int, columns: Mapping[str, np.ndarray], rejected: Sequence[tuple[str, str]] = ()) -> None:
        """Write part ``i`` atomically: ``columns`` (name -> array, "a/b" names make groups) and the
        ``(input, reason)`` pairs rejected in it."""
        try:
            w = _PartWriter(self.path(i), columns, rejected,
                            {"key": self.part_keys[i], "index": i, "job": self.key, "format": PARTS_FORMAT})
            w.close()
        except OutputError as exc:
            raise self._output_error(exc, self.path(i)) from exc
        self.done.add(i)

    def read(self, i: int) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
        """Part ``i``'s columns and rejected inputs."""
        columns: dict[str, np.ndarray] = {}
        with h5py.File(self.path(i), "r") as h5:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and not name.startswith("rejected/"):
                    columns[name] = read_strings(obj) if h5py.check_string_dtype(obj.dtype) else obj[()]
            h5.visititems(visit)
            rejected = list(zip(read_strings(h5["rejected/input"]), read_strings(h5["rejected/reason"])))
        return columns, [(str(a), str(b)) for a, b in rejected]

    def rejected(self) -> list[tuple[str, str]]:
        """Every part's rejected inputs, in part order (reads only those)."""
        out: list[tuple[str, str]] = []
        for i in range(self.n):
            with h5py.File(self.path(i), "r") as h5:
                out += [(str(a), str(b)) for a, b in zip(read_strings(h5["rejected/input"]),
                                                          read_strings(h5["rejected/reason"]))]
        return out

    def rows(self, i: int) -> int:
        with h5py.File(self.path(i), "r") as h5:
            return int(h5.attrs["n"])

    # ------------------------------------------------------------------------------------------ other steps
    def save_arrays(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Keep the result of another step (arrays) for a re-run of this same job."""
        path = self.dir / f"{name}.npz"
        try:
            with atomic_path(path, suffix=".npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, job_key=np.array(self.key), **{k: np.asarray(v) for k, v in arrays.items()})
        except OutputError as exc:
            raise self._output_error(exc, path) from exc

    def load_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        """What :meth:`save_arrays` kept, if it was kept for this same job."""
        path = self.dir / f"{name}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                if str(npz["job_key"]) != self.key:
                    return None
                return {k: npz[k] for k in npz.files if k != "job_key"}
        except Exception as exc:  # noqa: BLE001 - a damaged cache is simply redone
            log.info("%s: unreadable (%s); computing it again", path, exc)
            return None

    # ------------------------------------------------------------------------------------------ internals
    def _output_error(self, exc: OutputError, path: Path) -> OutputError:
        """The error of a part's write, told as the output's: ``OUT: could not be written (why; writing PART)``."""
        cause = exc.__cause__
        reason = describe_os_error(cause) if cause is not None else str(exc)
        return OutputError(f"{self.out}: could not be written ({reason}; writing {path})")

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        try:
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot write here ({describe_os_error(exc)})") from exc
        try:
            # a POSIX record lock: released when this process dies, not inherited by worker processes
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{self.out}: another astrocnn process is writing it (its work folder {self.dir} "
                              "is locked)") from exc
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _clean_partials(self) -> None:
        """Temporary files of a killed run (``kill -9`` leaves them; atomic writes remove their own)."""
        stale = [p for p in self.dir.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]
        for s in self.siblings:
            stale += s.parent.glob(f".{s.name}.*.partial")
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            log.info("%s: removed %d temporary files left by an interrupted run", self.out, len(stale))

    def _refuse_foreign(self, manifest: Mapping[str, Any] | None) -> None:
        """Stop, touching nothing, when the work folder holds files that no manifest of this output claims:
        someone else's folder of that name is never emptied."""
        ours = (isinstance(manifest, Mapping) and manifest.get("format") == PARTS_FORMAT
                and manifest.get("output") == self.out.name)
        if ours:
            return
        others = sorted(p.name for p in self.dir.iterdir() if p.name != ".lock")
        if others:
            raise OutputError(
                f"{self.out}: its work folder {self.dir} holds files astrocnn did not make for this output "
                f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}; no manifest of it): move them away "
                "or choose another output name")

    def _read_manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _same_settings(self, manifest: Mapping[str, Any]) -> bool:
        if manifest.get("format") != PARTS_FORMAT or manifest.get("format_version") != PARTS_VERSION:
            log.info("%s: made by another astrocnn version; discarding its parts", self.dir)
            return False
        old = manifest.get("settings") or {}
        if old == self.settings:
            return True
        differ = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
        log.info("%s: its parts were made with other settings (%s differ); discarding them", self.dir,
                 ", ".join(differ))
        return False

    def _has_parts(self) -> bool:
        if not self.dir.is_dir():
            return False
        return any(p.name.startswith("part-") or p.suffix == ".npz" for p in self.dir.iterdir())

    def _clear(self) -> None:
        for p in self.dir.iterdir():
            if p.name != ".lock":
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def _scan(self, quiet: bool = False) -> set[int]:
        """Finished parts whose key is that of their inputs now; others are removed."""
        done: set[int] = set()
        changed = 0
        wanted = {self.path(i).name: i for i in range(self.n)}
        for p in sorted(self.dir.glob("part-*.h5")):
            i = wanted.get(p.name)
            ok = False
            if i is not None:
                try:
                    with h5py.File(p, "r") as h5:
                        ok = h5.attrs.get("key") == self.part_keys[i] and "rejected" in h5
                except (OSError, RuntimeError, ValueError, KeyError):
                    ok = False
            if ok:
                done.add(i)
            else:
                changed += 1
                p.unlink(missing_ok=True)
        if changed and not quiet:
            log.info("%s: %d parts were made from inputs that have changed since; they are prepared again",
                     self.dir, changed)
        return done
