"""`oncofed-ops local-federation` run as a user would: a subprocess, files in and out.

The answers are checked against pandas on the pooled CSVs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ops.processes import child_env

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240


def _table(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(35, 90, rows),
            "bmi": np.round(rng.normal(24.5, 3.5, rows), 2),
            "sex": rng.choice(["male", "female"], rows, p=[0.6, 0.4]),
            "time": rng.integers(10, 2000, rows),
            "status": rng.integers(1, 3, rows),
        }
    )
    # Left out by describe; 6 per site so that each site may say how many (5 is the minimum).
    frame.loc[rng.choice(rows, 6, replace=False), "bmi"] = np.nan
    return frame


@pytest.fixture(scope="module")
def site_csvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sites")
    paths = {}
    for i, (site, rows) in enumerate({"north": 40, "south": 55, "west": 35}.items()):
        paths[site] = folder / f"{site}.csv"
        _table(100 + i, rows).to_csv(paths[site], index=False)
    return paths


def _pooled(csvs: dict[str, Path]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in csvs.values()], ignore_index=True)


def _run(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "local-federation", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _federate(
    csvs: dict[str, Path], spec: dict[str, object], tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    study = tmp_path / "study.json"
    study.write_text(json.dumps(spec), encoding="utf-8")
    args = ["--study", str(study), "--out", str(tmp_path / "result.json"), "--timeout", "120"]
    args += ["--workdir", str(tmp_path / "work")]  # kept, for the logs; pytest cleans up
    for site, path in csvs.items():
        args += ["--site", f"{site}={path}"]
    return _run(*args, *extra)


def test_count_over_two_sites_with_a_policy_equals_pooled_pandas(
    site_csvs: dict[str, Path], tmp_path: Path
) -> None:
    # The default policy wants results from three sites or more; this one allows two.
    policy = tmp_path / "site-policy.toml"
    policy.write_text(
        'min_cell_size = 5\nmin_sites = 2\n\n[analyses]\ncount = "auto"\n', encoding="utf-8"
    )
    two = {s: site_csvs[s] for s in ("north", "south")}
    spec = {"analysis": "count", "where": {"field": "age", "op": ">=", "value": 60}}
    done = _federate(two, spec, tmp_path, "--policy", str(policy))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""  # progress goes to stderr only
    envelope = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    expected = {s: int((pd.read_csv(p)["age"] >= 60).sum()) for s, p in two.items()}
    assert min(expected.values()) >= 5  # nothing here should be suppressed
    assert envelope["analysis"] == "count"
    assert envelope["result"]["count"] == int((_pooled(two)["age"] >= 60).sum())
    assert {s["name"]: (s["n"], s["status"]) for s in envelope["sites"]} == {
        s: (n, "ok") for s, n in expected.items()
    }
    assert {"analysis", "n", "n_excluded_missing", "sites", "disclosure", "result"} <= set(envelope)
    # Only the edges were given the tables: the hub's home and log never name them.
    hub_side = [tmp_path / "work" / "hub" / "hub.toml", tmp_path / "work" / "logs" / "hub.log"]
    for text in (p.read_text(encoding="utf-8") for p in hub_side):
        assert not any(str(csv) in text for csv in two.values())


def test_describe_over_three_sites_on_default_policy_equals_pooled_pandas(
    site_csvs: dict[str, Path], tmp_path: Path
) -> None:
    variables = ["age", "bmi", "sex"]
    done = _federate(site_csvs, {"analysis": "describe", "variables": variables}, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    envelope = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    pooled = _pooled(site_csvs)
    used = pooled.dropna(subset=variables)  # rows missing a used value are left out
    result = envelope["result"]["variables"]
    assert envelope["n"] == len(used)
    assert envelope["n_excluded_missing"] == len(pooled) - len(used)
    for name in ("age", "bmi"):
        assert result[name]["n"] == len(used)
        assert math.isclose(result[name]["mean"], used[name].mean(), rel_tol=1e-9)
        assert math.isclose(result[name]["sd"], used[name].std(ddof=1), rel_tol=1e-9)
        assert "min" not in result[name]  # single patients' values stay home by default
    assert result["sex"]["counts"] == used["sex"].value_counts().to_dict()


def test_a_study_that_cannot_run_exits_non_zero_with_one_line(
    site_csvs: dict[str, Path], tmp_path: Path
) -> None:
    spec = {"analysis": "describe", "variables": ["no_such_column"]}
    done = _federate(site_csvs, spec, tmp_path)
    assert done.returncode != 0
    # Progress lines come first; the error is the last line, whole on one line.
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("oncofed-ops: error:")
    assert "no_such_column" in last
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize(
    ("site", "study_text", "message"),
    [
        ("A={missing}", '{"analysis": "count"}', "does not exist"),
        ("A={csv}", "this is not json", "not JSON"),
        ("A", '{"analysis": "count"}', "NAME=PATH.csv"),
    ],
)
def test_unusable_input_exits_non_zero_with_a_one_line_message(
    site_csvs: dict[str, Path], tmp_path: Path, site: str, study_text: str, message: str
) -> None:
    study = tmp_path / "study.json"
    study.write_text(study_text, encoding="utf-8")
    site_arg = site.format(missing=tmp_path / "missing.csv", csv=site_csvs["north"])
    out = tmp_path / "result.json"
    done = _run("--site", site_arg, "--study", str(study), "--out", str(out), timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert not out.exists()
