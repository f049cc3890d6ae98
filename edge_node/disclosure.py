"""Disclosure control: what of an analysis's local payload may leave the site.

Pure functions over the round's parameters, the payload and the site's policy.
`check_round` runs before anything is computed (rounds this site will not take
part in); `control` applies the analysis's rule to what was computed. The rules
live beside this module: `disclosure_tables` (count, describe, crosstab, ttest),
`disclosure_survival` (kaplan_meier, logrank), `disclosure_models` (cox, logistic),
and the cell rule with its secondary suppression in `disclosure_cells`.

Consistency: one-round tabulations from a site below the cell rule answer with a
suppressed payload; multi-round analyses answer REFUSED (the hub drops the site).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edge_node.disclosure_cells import (
    ALL_SUPPRESSED,
    Released,
    is_small,
    suppress_cells,
    suppress_table,
)
from edge_node.disclosure_models import control_cox, control_logistic
from edge_node.disclosure_survival import control_survival
from edge_node.disclosure_tables import (
    control_count,
    control_crosstab,
    control_describe,
    control_ttest,
)
from edge_node.policy import Policy
from federated_ml.analyses import secure_rounds as sr
from shared_cdm.errors import InvalidInput, Refused

__all__ = [
    "ALL_SUPPRESSED",
    "Released",
    "check_round",
    "control",
    "is_small",
    "participating_sites",
    "suppress_cells",
    "suppress_table",
]

Rule = Callable[[Mapping[str, Any], Mapping[str, Any], Policy], Released]

_RULES: Mapping[str, Rule] = {
    "count": control_count,
    "describe": control_describe,
    "crosstab": control_crosstab,
    "ttest": control_ttest,
    "kaplan_meier": control_survival,
    "logrank": control_survival,
    "cox": control_cox,
    "logistic": control_logistic,
}
# Round phases whose payload holds per-time vectors: they need a mask round.
_VECTOR_PHASES = frozenset({"exact", "sums"})


def control(
    analysis: str,
    payload: Mapping[str, Any],
    policy: Policy,
    params: Mapping[str, Any] | None = None,
) -> Released:
    """Apply the rule for `analysis`; Refused when no rule exists or the rule says no."""
    rule = _RULES.get(analysis)
    if rule is None:
        raise Refused(
            f"this site has no disclosure rule for analysis {analysis!r}; nothing is released",
            code="no_disclosure_rule",
        )
    return rule(payload, params or {}, policy)


def participating_sites(params: Mapping[str, Any]) -> int | None:
    """How many sites take part in this round, when the round says: the peers of a
    mask round, else the hub's `n_sites`; None when the round does not say."""
    sec = params.get(sr.SECAGG)
    if sr.phase(params) == "mask" and isinstance(sec, Mapping):
        peers = sec.get("peers")
        return len(peers) if isinstance(peers, Mapping) else 0
    n_sites = params.get("n_sites")
    if n_sites is None:
        return None
    if not isinstance(n_sites, int) or isinstance(n_sites, bool) or n_sites < 1:
        raise InvalidInput(f"round parameter n_sites must be a whole number, not {n_sites!r}")
    return n_sites


def check_round(analysis: str, params: Mapping[str, Any], policy: Policy) -> None:
    """Refuse, before computing anything, a round this site's policy rules out."""
    if sr.SECAGG in params and not policy.allow_secure_aggregation:
        raise Refused(
            f"{analysis}: this round needs secure aggregation, which this site's policy "
            "does not allow (allow_secure_aggregation = false)",
            code="secure_aggregation_not_allowed",
        )
    sites = participating_sites(params)
    if sites is not None and sites < policy.min_sites:
        raise Refused(
            f"{analysis}: {sites} site(s) take part; this site releases results only "
            f"with at least {policy.min_sites} (its policy's min_sites)",
            code="too_few_sites",
        )
    if params.get("phase") in _VECTOR_PHASES and sr.phase(params) != "mask":
        raise Refused(
            f"{analysis}: per-time counts leave this site only masked by secure "
            "aggregation, and this round has no mask phase",
            code="unmasked_vectors",
        )
