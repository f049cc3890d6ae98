"""Edge pipeline throughput: `oncofed-edge sync` of a synthetic hospital into
PostgreSQL against a plain PostgreSQL COPY of the same source rows, in one run.

Run with `make bench`, or only this benchmark:

    ONCOFED_BENCH_PATIENTS=20000 .venv/bin/python -m pytest \
        tests/benchmarks/test_pipeline_throughput.py -s -q -p no:cacheprovider -m benchmark

The issue's figure is a 1,000,000-patient hospital (about 54.6 million source
rows; `ONCOFED_BENCH_PATIENTS=1000000`). Generating it takes about 27 minutes,
once: it is cached in ONCOFED_BENCH_DIR (default /tmp/oncofed-bench), ~9.5 GB
with the EMR tables exported to CSV. At the 6,500-8,000 rows/s measured at
20,000 patients on 2 shared cores, its sync takes 2 hours or more (more once the
measurement indexes outgrow shared_buffers), plus ~35 minutes for the
250,000-patient memory comparison; the databases need some 15-20 GB while it
runs (the analysis database alone was 217 MB at 20,000 patients). The default,
20,000 patients (1,092,376 source rows), takes about 5 minutes here once the
hospital is cached (30 s to generate it the first time).

What is measured, all against the PostgreSQL at ONCOFED_TEST_PG_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), in throwaway databases
`oncofed_bench_*` dropped afterwards:

- pipeline: `oncofed-edge sync --quiet --json` as a child process into fresh state
  and analysis databases: wall time (interpreter start-up included; the run's own
  time from the summary is printed too) and the peak RSS: the child's own
  (`wait4`) and, sampled, the sum over it and its scrubbing worker processes
  (`ONCOFED_SCRUB_WORKERS`, default one per CPU). Rows = the rows read from
  every source table (sum of `read`).
- baseline: COPY of the same source rows (the LIS and PACS CSV files, each EMR
  table exported to CSV beforehand, untimed) into text-column tables (no keys,
  no indexes) of a fresh database, streamed from the files, one transaction per
  table; done three times into new tables, the median counts.
- memory: the same sync of a hospital 4x smaller; the peak RSS (of the process
  tree) must not grow with the data (at most 1.5x the smaller run's), as it is
  meant to be bounded by the batch size. `ONCOFED_BENCH_BATCH_SWEEP=1` also
  syncs the large hospital with a 4x smaller batch, to show what the batch size
  does to the peak.

Asserted: per table read = skipped + loaded + merged + quarantined, the COPY loads
as many rows as the pipeline read, and the memory bound. The throughput target
(pipeline at least 0.3 of COPY) is printed beside the measured ratio, not asserted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.benchmarks.pipeline_bench import (
    CopyRun,
    SyncRun,
    copy_baseline,
    hospital,
    note_text_setting,
    pg_database,
    pg_server_url,
    pipeline_once,
    source_files,
)

PATIENTS = int(os.environ.get("ONCOFED_BENCH_PATIENTS", "20000"))
BATCH_SIZE = int(os.environ.get("ONCOFED_BENCH_BATCH", "20000"))  # the CLI's default
SHRINK = 4
TARGET_RATIO = 0.3
MEMORY_GROWTH_LIMIT = 1.5
MB = 1 << 20

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(0)]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _check_counts(run: SyncRun) -> None:
    assert run.summary["status"] == "finished"
    for t in run.tables:
        name = f"{t['source']}/{t['table']}"
        assert "error" not in t, f"{name}: {t['error']}"
        parts = t["skipped"] + t["loaded"] + t["merged"] + t["quarantined"]
        assert t["read"] == parts, f"{name}: read {t['read']} != {parts} (skipped+in)"


def _measure(patients: int, batch_size: int, tmp: Path) -> tuple[SyncRun, CopyRun]:
    folder = hospital(patients)
    files = source_files(folder)
    with pg_database("copy") as url:
        copied = copy_baseline(files, url)
    run = pipeline_once(folder, batch_size=batch_size, workdir=tmp)
    return run, copied


def _line(patients: int, batch: int, run: SyncRun, copied: CopyRun) -> str:
    rows = run.read
    pipe_rate, copy_rate = rows / run.seconds, copied.rows / copied.seconds
    return (
        f"{patients:>9,} {batch:>7,} {rows:>11,} "
        f"{run.seconds:>8.1f} {run.in_run_seconds:>8.1f} {run.cpu_seconds:>7.1f} "
        f"{pipe_rate:>10,.0f} "
        f"{copied.seconds:>7.2f} {copy_rate:>10,.0f} "
        f"{pipe_rate / copy_rate:>7.3f} {run.peak_rss / MB:>8.0f} {run.tree_peak_rss / MB:>8.0f}"
    )


def test_pipeline_throughput_against_copy(tmp_path: Path) -> None:
    small = max(PATIENTS // SHRINK, 1)
    print(f"\nPostgreSQL {pg_server_url()}; before: {_load()}")
    runs: list[tuple[int, int, SyncRun, CopyRun]] = []
    big, big_copy = _measure(PATIENTS, BATCH_SIZE, tmp_path)
    runs.append((PATIENTS, BATCH_SIZE, big, big_copy))
    little, little_copy = _measure(small, BATCH_SIZE, tmp_path)
    runs.append((small, BATCH_SIZE, little, little_copy))
    if os.environ.get("ONCOFED_BENCH_BATCH_SWEEP") == "1":
        batch = max(BATCH_SIZE // SHRINK, 100)
        swept = pipeline_once(hospital(PATIENTS), batch_size=batch, workdir=tmp_path)
        runs.append((PATIENTS, batch, swept, big_copy))

    print(f"after: {_load()}")
    for patients, copied in ((PATIENTS, big_copy), (small, little_copy)):
        each = ", ".join(f"{t:.2f}" for t in copied.repeats)
        print(
            f"COPY {patients:,} patients: {copied.rows:,} rows, {copied.bytes / MB:.0f} MB "
            f"of CSV, {each} s (median counts)"
        )
    print(
        f"{'patients':>9} {'batch':>7} {'rows':>11} {'sync s':>8} {'in-run s':>8} {'CPU s':>7} "
        f"{'sync r/s':>10} {'COPY s':>7} {'COPY r/s':>10} {'ratio':>7} {'peak MB':>8} "
        f"{'tree MB':>8}"
    )
    for patients, batch, run, copied in runs:
        print(_line(patients, batch, run, copied))
    ratio = (big.read / big.seconds) / (big_copy.rows / big_copy.seconds)
    in_run = (big.read / big.in_run_seconds) / (big_copy.rows / big_copy.seconds)
    growth = big.tree_peak_rss / little.tree_peak_rss
    print(
        f"pipeline/COPY at {PATIENTS:,} patients: {ratio:.3f} "
        f"(run's own time: {in_run:.3f}); target >= {TARGET_RATIO}: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT MET'}"
    )
    print(
        f"peak RSS of the sync and its scrubbing workers {big.tree_peak_rss / MB:.0f} MB at "
        f"{PATIENTS:,} patients, {little.tree_peak_rss / MB:.0f} MB at {small:,}: "
        f"x{growth:.2f} for x{SHRINK} the data (limit x{MEMORY_GROWTH_LIMIT}); "
        f"note text {note_text_setting() or 'scrubbed'}, "
        f"{os.environ.get('ONCOFED_SCRUB_WORKERS') or 'one per CPU'} scrubbing process(es)"
    )

    for _, _, run, copied in runs:
        _check_counts(run)
        assert copied.rows == run.read, f"COPY loaded {copied.rows} rows, sync read {run.read}"
    assert growth <= MEMORY_GROWTH_LIMIT, (
        f"peak RSS grows with the data: {big.tree_peak_rss / MB:.0f} MB for {PATIENTS:,} "
        f"patients vs {little.tree_peak_rss / MB:.0f} MB for {small:,}"
    )
