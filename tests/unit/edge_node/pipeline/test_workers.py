"""Scrubbing and structuring in worker processes: the same outputs as in-process,
refusals kept as refusals, a worker that dies loses only its item, and the
processes stop when the pool is closed."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_node.pipeline.deid import Deidentifier, DeidPolicy, Pseudonymizer
from edge_node.pipeline.notes import MAX_NOTE_CHARS, NoteRefused
from edge_node.pipeline.workers import (
    WORKERS_ENV,
    ExtractFailed,
    ExtractJob,
    ScrubJob,
    TextWorkers,
    worker_count,
)
from shared_cdm.errors import OncoFedError

SECRET = bytes(range(32))
EN = "Seen by Dr John Carter on 2021-03-04. Phone 13812345678. Adenocarcinoma, cT2aN0M0."
ZH = "患者张伟，男，65岁，2019年4月29日入院。电话13912345678。病理：肺腺癌。"
PATHOLOGY = "病理诊断报告\n右肺上叶腺癌，pT2aN0M0。EGFR突变型。"
DIES = "this item kills its worker"


def _jobs(deid: Deidentifier, surrogates: bool) -> list[ScrubJob]:
    texts: list[tuple[str | None, str | None]] = [
        (EN, "en"),
        (ZH, None),
        (None, None),
        ("   ", "en"),
        ("\x00\x01\x02\x03" * 50, None),  # refused: binary
        ("x" * (MAX_NOTE_CHARS + 1), "en"),  # refused: too large
    ]
    people = [f"{n:032x}" for n in range(4)]
    return [
        ScrubJob(text, lang, person, deid.shift_days(person), surrogates)
        for person in people
        for text, lang in texts
    ]


def _same(a: object, b: object) -> bool:
    if isinstance(a, NoteRefused) and isinstance(b, NoteRefused):
        return (a.code, a.reason) == (b.code, b.reason)
    return a == b


@pytest.fixture(scope="module")
def pool() -> Iterator[TextWorkers]:
    """Two workers holding the key (surrogates allowed); each job says what it wants."""
    workers = TextWorkers(Pseudonymizer(SECRET), SECRET, surrogates=True, workers=2, min_items=1)
    yield workers
    workers.close()


@pytest.mark.parametrize(
    ("surrogates", "dates"), [(False, "shift"), (True, "shift"), (False, "keep")]
)
def test_workers_scrub_as_the_sync_process_does(
    pool: TextWorkers, surrogates: bool, dates: str
) -> None:
    deid = Deidentifier(Pseudonymizer(SECRET), DeidPolicy(dates=dates))  # type: ignore[arg-type]
    jobs = _jobs(deid, surrogates)
    here = TextWorkers(deid.pseudonymizer, SECRET, surrogates=surrogates, workers=1)
    assert pool.pooled(len(jobs)) and not here.pooled(len(jobs))
    expected = here.scrub(jobs)()
    got = pool.scrub(jobs)()
    assert len(got) == len(jobs)
    assert all(_same(a, b) for a, b in zip(got, expected, strict=True))
    codes = [g.code for g in got if isinstance(g, NoteRefused)]
    assert codes == ["note_binary", "note_too_large"] * 4
    scrubbed = [g for g in got if isinstance(g, str) and g]
    assert scrubbed and not any("13812345678" in g or "Carter" in g for g in scrubbed)
    assert ("2021-03-04" in got[0]) == (dates == "keep")
    assert pool.crashes == 0


def test_extraction_in_workers_matches_in_process(pool: TextWorkers) -> None:
    jobs = [ExtractJob("pathology", PATHOLOGY, "zh"), ExtractJob("no_such_kind", "text", "en")]
    got = pool.extract(jobs)()
    expected = TextWorkers(Pseudonymizer(SECRET), SECRET, workers=1).extract(jobs)()
    assert not isinstance(got[0], ExtractFailed)
    assert not isinstance(expected[0], ExtractFailed)
    assert got[0].fields == expected[0].fields and got[0].evidence == expected[0].evidence
    assert got[0].fields.get("pT") is not None
    assert isinstance(got[1], ExtractFailed) and got[1] == expected[1]


def _dies_on(items: list[str]) -> list[str]:
    """Runs in a worker: dies like a crash in native code on DIES."""
    if DIES in items:
        os._exit(3)
    return [item.upper() for item in items]


def test_a_worker_that_dies_loses_only_its_item_and_the_pool_goes_on() -> None:
    pool = TextWorkers(Pseudonymizer(SECRET), SECRET, workers=2, min_items=1)
    items = [f"note {n}" for n in range(20)]
    items[7] = DIES
    try:
        got = pool._submit(_dies_on, items, "<lost>")()
        assert got == [("<lost>" if i == DIES else i.upper()) for i in items]
        assert pool.crashes == 1
        # the pool works again afterwards
        jobs = [ScrubJob(EN, "en", "a" * 32, 5, False)] * 3
        again = pool.scrub(jobs)()
        assert all(isinstance(g, str) and "[NAME]" in g for g in again)
    finally:
        pool.close()


def test_closing_stops_the_workers_even_with_work_pending() -> None:
    pool = TextWorkers(Pseudonymizer(SECRET), SECRET, workers=2, min_items=1)
    before = {p.pid for p in multiprocessing.active_children()}
    jobs = [ScrubJob(EN, "en", f"{n:032x}", 5, False) for n in range(400)]
    pending = pool.scrub(jobs)  # never collected: the caller failed meanwhile
    started = {p.pid for p in multiprocessing.active_children()} - before
    assert started  # the workers ran
    pool.close()
    assert not ({p.pid for p in multiprocessing.active_children()} & started)
    del pending


def test_worker_count() -> None:
    assert worker_count(3) == 3
    assert worker_count("1") == 1
    assert worker_count("auto") >= 1


def test_worker_count_defaults_to_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert worker_count(None) == 1
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert worker_count(None) == 3
    for bad in ("0", "two", -1):
        with pytest.raises(OncoFedError) as err:
            worker_count(bad)
        assert err.value.code == "bad_scrub_workers"


def test_surrogates_without_a_secret_stay_in_process() -> None:
    pool = TextWorkers(Pseudonymizer(SECRET), None, surrogates=True, workers=4, min_items=1)
    assert pool.workers == 1 and not pool.pooled(1000)


_KILLED_SYNC = """
import time
from edge_node.pipeline.deid import Pseudonymizer
from edge_node.pipeline.workers import ScrubJob, TextWorkers

if __name__ == "__main__":
    pool = TextWorkers(Pseudonymizer(bytes(range(32))), None, workers=2, min_items=1)
    pool._restart()  # the workers are up
    pending = pool.scrub([ScrubJob("Dr John Carter", "en", "a" * 32, 5, False)] * 2000)
    print("ready", flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie holds nothing
    except FileNotFoundError:
        return False


def test_workers_leave_when_the_sync_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "killed_sync.py"
    script.write_text(_KILLED_SYNC, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children", encoding="ascii") as fh:
            children = [int(c) for c in fh.read().split()]
        assert children
    finally:
        proc.kill()  # as the OOM killer would: no finally, no shutdown
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [c for c in children if _alive(c)]
