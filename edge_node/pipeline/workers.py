"""The CPU-bound text work of a sync (note scrubbing, report structuring) on every core.

Scrubbing a note (`notes.scrub`) and extracting a report's fields
(`edge_node.structure.pipeline.extract`) are pure Python and hold the GIL, so a
sync spent most of its time on one core scrubbing. `TextWorkers` runs them in a
pool of processes: each worker loads the de-identifier (spaCy, jieba) once, in
its initializer, gets chunks of texts through a pipe and sends the results back;
nothing is written anywhere. A worker runs the very functions the sync process
runs, with the same keys and the person's date offset computed by the parent
(the policy's), so the outputs are those of the in-process path, which is used
when there is one worker (`ONCOFED_SCRUB_WORKERS=1`) or a batch has few texts.

A note the de-identifier fails on is refused as in-process (`NoteRefused`). A
note that kills its worker (a crash in native code, the OOM killer) is found by
re-running the unfinished chunk one note at a time in a fresh pool, and refused
(`note_scrub_failed`); a pool that cannot even start stops the sync. Workers
ignore Ctrl-C (the sync closes the pool) and exit when the sync process dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from edge_node.pipeline.deid import Pseudonymizer
from edge_node.pipeline.notes import NoteRefused, scrub
from shared_cdm.errors import OncoFedError

if TYPE_CHECKING:
    from edge_node.structure.core import Extraction

log = logging.getLogger(__name__)

WORKERS_ENV = "ONCOFED_SCRUB_WORKERS"
# Below this many texts a batch is done in-process: each worker loads spaCy, jieba
# and the extractors (~8 CPU seconds measured on a busy 2-core machine), which
# fewer notes (~15 ms each) do not win back.
MIN_POOL_ITEMS = 1000
PARENT_CHECK_SECONDS = 1.0
MAX_CHUNK = 64  # texts per round trip: few pickles, yet the workers stay evenly busy

T = TypeVar("T")
R = TypeVar("R")


def worker_count(value: str | int | None = None) -> int:
    """How many processes scrub: `value`, else ONCOFED_SCRUB_WORKERS, else 1 (in-process).
    `auto` means one per CPU this process may run on. In-process is the default
    because the pool only pays where cores are free (see docs/edge-pipeline.md)."""
    if value is None:
        value = os.environ.get(WORKERS_ENV) or None
    if value is None:
        return 1
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise OncoFedError(
            f"{WORKERS_ENV} must be a whole number of processes (1 = in-process), not {value!r}",
            code="bad_scrub_workers",
        )
    return n


@dataclass(frozen=True, slots=True)
class ScrubJob:
    """One note to scrub: its text, language, person and that person's date offset."""

    text: str | None
    lang: str | None
    person_key: str
    shift_days: int
    surrogates: bool


# A scrubbed text, or the (code, reason) of a refusal.
Scrubbed = str | NoteRefused


@dataclass(frozen=True, slots=True)
class ExtractJob:
    kind: str
    text: str
    lang: str


@dataclass(frozen=True, slots=True)
class ExtractFailed:
    """An extraction that raised: the exception's type name and message."""

    error: str
    message: str


class _NoteKeys(Pseudonymizer):
    """The pseudonymizer one note is scrubbed with: the site's keys (for surrogates)
    and the offset the parent computed under the policy (`Deidentifier.shift_days`),
    so the result is that of `Deidentifier.text_pseudonymizer()`."""

    __slots__ = ("_days", "_keyed")

    def __init__(self, base: Pseudonymizer | None, days: int) -> None:
        self._keyed = base is not None
        if base is not None:
            self._inner, self._outer = base._inner, base._outer
        self._days = days

    def _mac(self, kind: str, value: str) -> bytes:
        if not self._keyed:  # a worker gets the key only when the policy wants surrogates
            raise RuntimeError("this worker holds no key")
        return super()._mac(kind, value)

    def date_shift_days(self, person_key: str, max_days: int) -> int:
        return self._days


def scrub_job(job: ScrubJob, keys: Pseudonymizer | None) -> Scrubbed:
    try:
        return scrub(
            job.text,
            lang=job.lang,
            person_key=job.person_key,
            pseudonymizer=_NoteKeys(keys, job.shift_days),
            surrogates=job.surrogates,
        )
    except NoteRefused as exc:
        return exc


def extract_job(job: ExtractJob) -> Extraction | ExtractFailed:
    from edge_node.structure.pipeline import extract

    try:
        return extract(job.kind, job.text, job.lang)
    except Exception as exc:  # one report's failure is the caller's to record
        return ExtractFailed(type(exc).__name__, str(exc))


# -- inside a worker process ----------------------------------------------------------

_worker_keys: Pseudonymizer | None = None


def _init_worker(secret: bytes | None, parent: int) -> None:
    global _worker_keys
    # Ctrl-C reaches the whole process group: the sync process stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="oncofed-parent-watch", daemon=True
    ).start()
    _worker_keys = None if secret is None else Pseudonymizer(secret)
    import edge_node.deid_text.core  # noqa: F401  spaCy and jieba, once per worker


def _exit_with_parent(parent: int) -> None:
    """A sync killed outright (SIGKILL, the OOM killer) cannot stop its workers, and
    a worker holds its own end of the task pipe, so it would wait forever: it
    leaves when its parent is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _scrub_chunk(jobs: list[ScrubJob]) -> list[Scrubbed]:
    return [scrub_job(job, _worker_keys) for job in jobs]


def _extract_chunk(jobs: list[ExtractJob]) -> list[Extraction | ExtractFailed]:
    return [extract_job(job) for job in jobs]


def _ping(jobs: list[int]) -> list[int]:
    return jobs


# -- in the sync process ----------------------------------------------------------------


class TextWorkers:
    """A lazily started process pool for one sync run; `close()` stops it."""

    def __init__(
        self,
        keys: Pseudonymizer,
        secret: bytes | None,
        *,
        surrogates: bool = False,
        workers: int | str | None = None,
        min_items: int | None = None,
    ) -> None:
        self.keys = keys  # the in-process path's
        # A worker gets the site secret only when scrubbing needs it (surrogates).
        self._secret = secret if surrogates else None
        self.workers = worker_count(workers)
        if surrogates and secret is None:
            self.workers = 1
        self.min_items = MIN_POOL_ITEMS if min_items is None else min_items
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False
        self.crashes = 0  # items that killed a worker

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def scrub(self, jobs: Sequence[ScrubJob]) -> Callable[[], list[Scrubbed]]:
        """Starts scrubbing `jobs`; the returned function waits for the results (in order)."""
        if not self.pooled(len(jobs)):
            return lambda: [scrub_job(job, self.keys) for job in jobs]
        crashed = NoteRefused(
            "note_scrub_failed",
            "the de-identifier's worker process died on this note; not loaded",
        )
        return self._submit(_scrub_chunk, list(jobs), crashed)

    def extract(self, jobs: Sequence[ExtractJob]) -> Callable[[], list[Extraction | ExtractFailed]]:
        """Starts extracting `jobs`; the returned function waits for the results."""
        if not self.pooled(len(jobs)):
            return lambda: [extract_job(job) for job in jobs]
        crashed = ExtractFailed("WorkerDied", "the extractor's worker process died")
        return self._submit(_extract_chunk, list(jobs), crashed)

    def pooled(self, items: int) -> bool:
        """Whether `items` texts go to the worker processes (else: in-process)."""
        return self.workers > 1 and items >= self.min_items

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: the sync process has threads and open connections a fork would copy
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                # the parent's own pid: it may be dead before this worker starts
                initargs=(self._secret, os.getpid()),
            )
        return self._pool

    def _submit(
        self, fn: Callable[[list[T]], list[R]], jobs: list[T], crashed: R
    ) -> Callable[[], list[R]]:
        size = max(1, min(MAX_CHUNK, -(-len(jobs) // (self.workers * 4))))
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        try:
            pool = self._restart()
            futures: list[Future[list[R]] | None] = [pool.submit(fn, c) for c in chunks]
        except BrokenProcessPool:
            self._broken = True
            futures = [None] * len(chunks)

        def collect() -> list[R]:
            out: list[R] = []
            for chunk, future in zip(chunks, futures, strict=True):
                try:
                    if future is None:
                        raise BrokenProcessPool("not submitted")
                    out += future.result()
                except BrokenProcessPool:
                    self._broken = True
                    out += self._one_by_one(fn, chunk, crashed)
            return out

        return collect

    def _one_by_one(self, fn: Callable[[list[T]], list[R]], jobs: list[T], crashed: R) -> list[R]:
        """A chunk whose pool broke, again one item at a time, in a fresh pool after
        each death, so only the item that kills a worker is lost (as `crashed`)."""
        out: list[R] = []
        for job in jobs:
            pool = self._restart()
            try:
                out += pool.submit(fn, [job]).result()
            except BrokenProcessPool:
                self.crashes += 1
                log.warning("a text worker died on one item; that item is refused")
                self._broken = True
                out.append(crashed)
        return out

    def _restart(self) -> ProcessPoolExecutor:
        """The pool, a fresh one in place of a broken one; stops the sync if a fresh
        pool cannot work at all (workers that cannot start)."""
        if not self._broken and self._pool is not None:
            return self._pool
        self.close()
        self._broken = False
        pool = self._start()
        try:
            pool.submit(_ping, [0]).result()
        except BrokenProcessPool as exc:
            self.close()
            raise OncoFedError(
                "the note scrubbing workers cannot start (see the log); set "
                f"{WORKERS_ENV}=1 to scrub in the sync process",
                code="text_workers_failed",
            ) from exc
        return pool
