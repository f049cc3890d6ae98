"""Settings of the de-identifier, kept free of heavy imports (spaCy, jieba) so the
CLI can show its options without loading them."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SHIFT_DAYS = 180
# Annotated sets shipped in `devset/`, scored by `oncofed-edge deid-eval --split`.
SPLITS = (
    "dev",
    "heldout",
    "independent",
    "independent2",
    "independent3",
    "independent4",
    "independent5",
    "independent6",
)


@dataclass(frozen=True)
class Settings:
    surrogates: bool = False
    max_shift_days: int = MAX_SHIFT_DAYS
