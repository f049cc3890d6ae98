"""Site mappings (`mapping.yaml`) for the three synthetic hospitals, as a site
operator would write them; copy one next to a generated hospital's `emr.db`."""

from __future__ import annotations

from importlib.resources import files

from shared_cdm.errors import InvalidInput

VARIANT_CODES = ("A", "B", "C")


def mapping_text(variant_code: str) -> str:
    """The mapping YAML for hospital variant A, B or C."""
    code = variant_code.strip().upper()
    if code not in VARIANT_CODES:
        raise InvalidInput(
            f"unknown hospital variant {variant_code!r}; choose one of A, B, C",
            code="invalid_variant",
        )
    return (files(__name__) / f"{code}.yaml").read_text(encoding="utf-8")
