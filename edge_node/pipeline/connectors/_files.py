"""Listing a source's files, and the watermark of file-based sources (FHIR, HL7).

That watermark records the files finished (name, size, mtime, content hash) and
how many units (resources, messages) of the current file were read, so a run
resumes mid-file, skips unchanged files and picks up new or changed ones.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_node.pipeline.connectors.base import SourceMissing
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow

Item = SourceRow | RawReject
Unit = Callable[[], list[Item]]  # parses one resource or message when called


@dataclass(frozen=True)
class FileStamp:
    path: Path
    name: str  # relative to the source's root: the identity in watermarks
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path, root: Path) -> FileStamp:
        st = path.stat()
        return cls(path, Path(os.path.relpath(path, root)).as_posix(), st.st_size, st.st_mtime_ns)


def list_files(source: str, path: Path, suffixes: tuple[str, ...]) -> list[FileStamp]:
    """The files of a source `path`: the file itself, a folder's files with one
    of `suffixes`, or a glob's matches; sorted by name."""
    text = str(path)
    if glob.has_magic(text):
        root = Path(text)
        while glob.has_magic(str(root)):
            root = root.parent
        if not root.is_dir():
            raise SourceMissing(source, None, f"folder {root} (of {text})")
        found = [Path(p) for p in glob.glob(text, recursive=True)]
    elif path.is_dir():
        root = path
        found = [p for p in path.iterdir() if p.suffix.lower() in suffixes]
    elif path.is_file():
        return [FileStamp.of(path, path.parent)]
    else:
        raise SourceMissing(source, None, f"file or folder {path}")
    files = []
    for p in found:
        if p.name.startswith((".", "~")) or not p.is_file():
            continue
        try:
            files.append(FileStamp.of(p, root))
        except FileNotFoundError:  # removed while listing
            continue
    return sorted(files, key=lambda f: f.name)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


class FileProgress:
    """A file-set watermark: finished files and the position in the current one."""

    def __init__(self, watermark: str | None) -> None:
        self.done: dict[str, str] = {}
        self.current: tuple[str, str, int] | None = None
        if watermark:
            try:
                data = json.loads(watermark)
                self.done = {str(k): str(v) for k, v in data["done"].items()}
                cur = data.get("cur")
                if cur:
                    self.current = (str(cur[0]), str(cur[1]), int(cur[2]))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                # not ours (e.g. another kind's): read everything again
                self.done, self.current = {}, None

    @staticmethod
    def fingerprint(stamp: FileStamp, sha: str | None = None) -> str:
        return f"{stamp.size}:{stamp.mtime_ns}:{sha or digest(stamp.path)}"

    @staticmethod
    def unchanged(stamp: FileStamp, old: str) -> str | None:
        """The file's fingerprint if it is the one `old` describes, else None
        (hashing only when the size matches and the mtime does not)."""
        try:
            size, mtime, sha = old.split(":")
            if int(size) != stamp.size:
                return None
            if int(mtime) == stamp.mtime_ns:
                return old
        except ValueError:
            return None
        return FileProgress.fingerprint(stamp) if digest(stamp.path) == sha else None

    @staticmethod
    def dump(done: dict[str, str], current: tuple[str, str, int] | None) -> str:
        data: dict[str, object] = {"done": done}
        if current:
            data["cur"] = list(current)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _same(old: str, new: str) -> bool:
    """Whether two fingerprints are of the same content (size and hash)."""
    a, b = old.split(":"), new.split(":")
    return len(a) == len(b) == 3 and a[0] == b[0] and a[2] == b[2]


def read_files(
    files: Iterable[FileStamp],
    watermark: str | None,
    units: Callable[[FileStamp], Iterator[Unit]],
    batch_size: int,
) -> Iterator[SourceBatch]:
    """Batches of the items of each file's units, resuming after `watermark`."""
    progress = FileProgress(watermark)
    done: dict[str, str] = {}
    batch = SourceBatch()
    for stamp in files:
        old = progress.done.get(stamp.name)
        if old is not None and (same := FileProgress.unchanged(stamp, old)):
            done[stamp.name] = same
            continue
        try:
            fp = FileProgress.fingerprint(stamp)
        except FileNotFoundError:  # removed since listing: gone for this run
            continue
        cur = progress.current
        skip = cur[2] if cur is not None and cur[0] == stamp.name and _same(cur[1], fp) else 0
        for n, unit in enumerate(units(stamp), start=1):
            if n <= skip:
                continue
            for item in unit():
                if isinstance(item, SourceRow):
                    batch.rows.append(item)
                else:
                    batch.rejects.append(item)
            if len(batch.rows) + len(batch.rejects) >= batch_size:
                batch.watermark = FileProgress.dump(done, (stamp.name, fp, n))
                yield batch
                batch = SourceBatch()
        done[stamp.name] = fp
    batch.watermark = FileProgress.dump(done, None)
    if batch.rows or batch.rejects or batch.watermark != watermark:
        yield batch


def read_files_where(
    files: Iterable[FileStamp],
    units: Callable[[FileStamp], Iterator[Unit]],
    column: str,
    values: set[str],
    batch_size: int,
) -> Iterator[SourceBatch]:
    """Batches (no watermark) of the rows of all files whose `column` is in `values`."""
    batch = SourceBatch()
    for stamp in files:
        for unit in units(stamp):
            for item in unit():
                if isinstance(item, SourceRow) and item.values.get(column) in values:
                    batch.rows.append(item)
            if len(batch.rows) >= batch_size:
                yield batch
                batch = SourceBatch()
    if batch.rows:
        yield batch
