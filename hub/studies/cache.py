"""The hub's result cache (F7): the same question to the same sites over the same data
gets the combined answer again without asking the sites.

A hit needs the same canonical spec (sorted-key JSON, `no_cache` left out), the
same target sites, the same owner, every site still reporting the dataset
versions the earlier study ran on, and this hub's current versions. The owner
must match because each site's disclosure ledger counts releases per researcher:
handing one researcher's result to another would release it past that ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from hub.db.models import Study
from hub.studies import repository
from hub.studies.envelope import result_versions
from shared_cdm.errors import InvalidInput

NO_CACHE = "no_cache"


def bypasses_cache(spec: Mapping[str, Any]) -> bool:
    """`"no_cache": true` asks the sites again; anything but a boolean is refused."""
    value = spec.get(NO_CACHE, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"`{NO_CACHE}` must be true or false, not {value!r}")
    return value


def cache_key(spec: Mapping[str, Any], sites: Sequence[str]) -> str:
    # `no_cache` does not change the question, so a fresh answer refreshes the cache.
    question = {k: v for k, v in spec.items() if k != NO_CACHE}
    canonical = json.dumps(
        {"spec": question, "sites": sorted(sites)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _sites_ok(result: Mapping[str, Any]) -> int:
    return sum(1 for s in result.get("sites", []) if s.get("status") == "ok")


def find_cached(
    session: Session,
    *,
    key: str,
    owner: str,
    versions: Mapping[str, str] | None,
    min_sites: int,
) -> Study | None:
    """The newest computed study that answers the same question on the same data."""
    if versions is None:
        return None  # a site's dataset version is unknown: nothing proves the data unchanged
    for study in repository.completed_studies_with_key(session, key, owner):
        result = study.result
        if (
            result is not None
            and study.dataset_versions == dict(versions)
            and result.get("versions") == result_versions()
            and _sites_ok(result) >= min_sites
        ):
            return study
    return None
