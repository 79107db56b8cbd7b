"""The shapefile sets of one output ``NAME.shp`` (``NAME_answers.shp`` with its ``.shx``, ``.dbf``, ...), owned,
locked and replaced as a whole; standard library only, shared by the headless writer and the QGIS export.

- **Ownership**: the sets this output wrote are listed in ``.NAME.earthgptx/sets.json`` beside them. Only
  those are ever read, replaced or removed; a file that merely has a matching name is refused. Sets of an
  output written before the list existed are taken as ours only when ``legacy(shp, layer)`` says their
  fields are exactly those of that schema layer.
- **Locking**: one writer at a time (an OS lock on ``.NAME.earthgptx/lock``, released when its process
  dies); another waits at most ``timeout_s`` and then gets ``OutputBusyError``.
- **Replacing as a set**: the caller writes the new sets into ``staging()``; ``commit`` writes a journal
  (the commit point), moves every file into place, removes the owned sets that are no longer produced
  and updates the list. A kill part-way is completed by the next writer (``recover``); staging folders
  without a journal are removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from typing import Callable, Iterable, List, Optional

from .errors import OutputBusyError, OutputError

SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_LIST = "sets.json"
_JOURNAL = "journal.json"
#: temporary folders of writers before 0.2 (``tempfile.mkdtemp(prefix=".earthgptx-")`` beside the output)
_OLD_TEMP = re.compile(r"^\.earthgptx-[a-z0-9_]{8}$")
_OLD_TEMP_AGE_S = 3600.0


class ShapefileSets:
    """``with ShapefileSets(path) as sets:`` the locked, recovered shapefile output ``path`` (``NAME.shp``)."""

    def __init__(self, path: str, legacy: Callable[[str, str], bool] = lambda shp, layer: False,
                 timeout_s: float = 30.0) -> None:
        self.folder = os.path.dirname(os.path.abspath(path))
        self.stem = os.path.splitext(os.path.basename(path))[0]
        self.state = os.path.join(self.folder, f".{self.stem}.earthgptx")
        self._legacy = legacy
        self._timeout_s = timeout_s
        self._lock: Optional[int] = None
        self._staging: Optional[str] = None

    def __enter__(self) -> "ShapefileSets":
        try:
            os.makedirs(self.state, exist_ok=True)
            self._lock = os.open(os.path.join(self.state, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(f"cannot write in {self.folder}: {error.strerror}; nothing was written") from error
        deadline = time.monotonic() + self._timeout_s
        while not _try_lock(self._lock):
            if time.monotonic() > deadline:
                os.close(self._lock)
                self._lock = None
                raise OutputBusyError(f"output busy: another program is writing {self.stem}_*.shp in {self.folder} "
                                      f"(waited {self._timeout_s:g} s); nothing was written, try again")
            time.sleep(0.05)
        try:
            self.recover()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._release()
        if not any(os.path.exists(os.path.join(self.state, f)) for f in (_LIST, _JOURNAL)):
            shutil.rmtree(self.state, ignore_errors=True)  # nothing was ever written: leave no trace

    def owned(self) -> List[str]:
        """Base names (``NAME_answers``, ...) of the sets this output owns that exist."""
        listed = self._read_list()
        if listed is None:
            listed = [base for base in self.candidates()
                      if self._legacy(os.path.join(self.folder, base + ".shp"), self.layer_of(base))]
        return [base for base in listed if os.path.exists(os.path.join(self.folder, base + ".shp"))]

    def staging(self) -> str:
        """An empty folder, on the output's file system, for the new sets."""
        if self._staging is None:
            try:
                self._staging = tempfile.mkdtemp(prefix="staging-", dir=self.state)
            except OSError as error:
                raise OutputError(f"cannot write in {self.folder}: {error.strerror}; nothing was written") from error
        return self._staging

    def check_free(self, bases: Iterable[str]) -> None:
        """Refuse ``bases`` that would replace files this output does not own."""
        owned = set(self.owned())
        for base in bases:
            if base in owned:
                continue
            taken = [base + ext for ext in SHAPEFILE_PARTS if os.path.exists(os.path.join(self.folder, base + ext))]
            if taken:
                raise OutputError(f"{taken[0]} in {self.folder} was not written by EarthGPT-X for {self.stem}.shp: "
                                  "choose another output name; nothing was written")

    def commit(self, bases: List[str]) -> List[str]:
        """Make the sets ``bases`` written in ``staging()`` the output: owned sets not among them are
        removed. Returns the paths of the new ``.shp`` files."""
        self.check_free(bases)
        staging = self.staging()
        journal = {"staging": os.path.basename(staging), "files": sorted(os.listdir(staging)),
                   "remove": [b for b in self.owned() if b not in bases], "sets": bases}
        try:
            _write_json(os.path.join(self.state, _JOURNAL), journal)
        except OSError as error:
            raise OutputError(f"cannot write in {self.folder}: {error.strerror}; nothing was replaced") from error
        self._apply(journal)
        self._staging = None
        return [os.path.join(self.folder, base + ".shp") for base in bases]

    def recover(self) -> None:
        """Finish a commit that was cut (journal present), remove staging folders without one and the
        temporary folders older writers left beside the output."""
        path = os.path.join(self.state, _JOURNAL)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self._apply(json.load(f))
        for entry in os.listdir(self.state):
            if entry.startswith("staging-"):
                shutil.rmtree(os.path.join(self.state, entry), ignore_errors=True)
        remove_stale_temporary(self.folder)

    def _apply(self, journal: dict) -> None:
        """Carry out a journal: every staged file moved into place, old sets removed, the list updated,
        then the journal removed. Each step can be repeated, so a cut run is finished by the next."""
        staging = os.path.join(self.state, journal["staging"])
        try:
            for name in journal["files"]:
                if os.path.exists(os.path.join(staging, name)):
                    os.replace(os.path.join(staging, name), os.path.join(self.folder, name))
            for base in journal["remove"]:
                for ext in SHAPEFILE_PARTS:
                    if os.path.exists(os.path.join(self.folder, base + ext)):
                        os.remove(os.path.join(self.folder, base + ext))
            _write_json(os.path.join(self.state, _LIST), {"format": "earthgptx-shapefile-sets", "version": 1,
                                                          "sets": journal["sets"]})
            os.remove(os.path.join(self.state, _JOURNAL))
        except OSError as error:
            raise OutputError(f"could not finish replacing {self.stem}_*.shp in {self.folder}: {error.strerror}; "
                              "the next write finishes it") from error
        shutil.rmtree(staging, ignore_errors=True)

    def _read_list(self) -> Optional[List[str]]:
        path = os.path.join(self.state, _LIST)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return [str(base) for base in json.load(f)["sets"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OutputError(f"the list of this output's files {path} is damaged ({error}); move it away to "
                              "start a new output") from error

    def candidates(self) -> List[str]:
        """Existing sets whose names this output could have written (``NAME_<layer>[_<family>]``)."""
        return sorted(f[:-4] for f in os.listdir(self.folder) if f.endswith(".shp") and self.layer_of(f[:-4]))

    def layer_of(self, base: str) -> str:
        """The schema layer of the set ``base`` (``NAME_prompts_point`` -> ``prompts``), "" for another name."""
        found = re.fullmatch(re.escape(self.stem) + r"_(prompts|answers|detections|masks)(_(point|line|polygon))?",
                             base)
        return found.group(1) if found else ""

    def _release(self) -> None:
        if self._lock is not None:
            _unlock(self._lock)
            os.close(self._lock)
            self._lock = None


def remove_stale_temporary(folder: str) -> None:
    """Remove the temporary folders that writers before 0.2 left in ``folder`` when killed
    (``.earthgptx-XXXXXXXX``, untouched for an hour)."""
    now = time.time()
    for entry in os.listdir(folder):
        full = os.path.join(folder, entry)
        if _OLD_TEMP.match(entry) and os.path.isdir(full) and now - os.path.getmtime(full) > _OLD_TEMP_AGE_S:
            shutil.rmtree(full, ignore_errors=True)


def _write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` atomically and durably (beside, flushed to disk, then renamed)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
