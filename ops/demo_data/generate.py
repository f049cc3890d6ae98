"""Seeded synthetic flat tables, one row per (invented) patient.

The shapes are lung-cancer-like on purpose (older, mostly male, more smokers,
survival falling with stage and age) so that the demo's numbers look plausible;
every value comes from a random generator seeded by `seed` and the site's
position, so the same seed always gives the same rows.

    python -m ops.demo_data.generate OUTDIR [--seed N]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_SEED = 20240601
COLUMNS = ("age", "sex", "stage", "histology", "smoking", "time", "status")
STAGES = ("I", "II", "III", "IV")
HISTOLOGIES = ("adenocarcinoma", "squamous", "small_cell", "large_cell")
SMOKING = ("never", "former", "current")
FOLLOW_UP_DAYS = 1826  # five years


@dataclass(frozen=True)
class SiteProfile:
    """How one invented hospital's patients differ from the others'."""

    name: str
    rows: int
    mean_age: float
    stage_weights: tuple[float, float, float, float]
    male_share: float
    smoking_missing_share: float


DEMO_SITES: tuple[SiteProfile, ...] = (
    SiteProfile("riverside", 180, 64.0, (0.30, 0.20, 0.28, 0.22), 0.62, 0.02),
    SiteProfile("lakeview", 360, 66.5, (0.22, 0.18, 0.30, 0.30), 0.58, 0.05),
    SiteProfile("hillcrest", 250, 62.0, (0.35, 0.22, 0.25, 0.18), 0.66, 0.00),
)

# Yearly hazard of death by stage; age adds to it (log-linear).
_STAGE_HAZARD = {"I": 0.05, "II": 0.12, "III": 0.30, "IV": 0.75}
_HISTOLOGY_WEIGHTS = (0.50, 0.30, 0.13, 0.07)
_SMOKING_WEIGHTS = (0.15, 0.45, 0.40)


def generate_site(profile: SiteProfile, seed: int, index: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, index])
    n = profile.rows
    age = np.clip(np.rint(rng.normal(profile.mean_age, 9.5, n)), 30, 92).astype(int)
    sex = np.where(rng.random(n) < profile.male_share, "male", "female")
    weights = np.asarray(profile.stage_weights) / sum(profile.stage_weights)
    stage = rng.choice(STAGES, size=n, p=weights)
    histology = rng.choice(HISTOLOGIES, size=n, p=_HISTOLOGY_WEIGHTS)
    smoking = rng.choice(SMOKING, size=n, p=_SMOKING_WEIGHTS).astype(object)
    smoking[rng.random(n) < profile.smoking_missing_share] = None
    yearly = np.array([_STAGE_HAZARD[s] for s in stage]) * np.exp(0.03 * (age - 65))
    death_day = rng.exponential(365.25 / yearly)
    censor_day = rng.uniform(90, FOLLOW_UP_DAYS, n)
    time = np.maximum(np.rint(np.minimum(death_day, censor_day)), 1).astype(int)
    status = (death_day <= censor_day).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "sex": sex,
            "stage": stage,
            "histology": histology,
            "smoking": smoking,
            "time": time,
            "status": status,
        },
        columns=list(COLUMNS),
    )


def generate_sites(
    seed: int = DEFAULT_SEED, profiles: tuple[SiteProfile, ...] = DEMO_SITES
) -> dict[str, pd.DataFrame]:
    """Site name → its table."""
    return {p.name: generate_site(p, seed, i) for i, p in enumerate(profiles)}


def write_sites(out_dir: Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write one CSV per demo site into `out_dir`; site name → path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in generate_sites(seed).items():
        paths[name] = out_dir / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the demo's synthetic site tables.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    for name, path in write_sites(args.out_dir, args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
