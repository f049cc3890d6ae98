"""The HTML page of an ML study's figures, for the REST API and `oncofed-hub study figures`.

One self-contained page: plotly.js is inlined from the plotly package (hospitals and
the hub have no internet, so nothing may come from a CDN), followed by the study's
Plotly figures (`hub.studies.ml.figures`), each with a line saying what it shows.
Every string that came from the study (title, model name, site names, messages) is
escaped before it reaches the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federated_ml.flower.study import RESULT_STATE
from hub.db.models import Study
from hub.db.session import Database
from hub.studies import repository
from hub.studies.ml import is_ml
from shared_cdm.errors import Conflict, NotFound

# The figures `figures()` makes, in page order, with what each shows.
CAPTIONS: dict[str, str] = {
    "loss": (
        "Training loss the sites reported in each round, and the held-out loss of the "
        "model after each round (all sites' held-out rows). Lower is better; a held-out "
        "loss that rises while the training loss falls means over-fitting."
    ),
    "auc": (
        "Held-out AUC of the model after each round: pooled over all sites' held-out "
        "rows, weighted by site, and (dotted) each site's own held-out AUC. A site far "
        "below the pooled line is one where the model works less well (non-IID data)."
    ),
    "calibration": (
        "Calibration of the final model on all sites' held-out rows: mean predicted risk "
        "against the observed rate per score bin (hover for the number of rows). Points "
        "on the dotted diagonal are perfectly calibrated."
    ),
}
OTHER_CAPTION = "A further figure recorded with the study's result."
# Trace fields that may carry a study's strings (site names in legend entries).
TRACE_TEXT = ("name", "text", "hovertext", "legendgroup")


@dataclass(frozen=True)
class MlFigures:
    """What the page shows of one ML study."""

    study_id: str
    title: str
    model_name: str
    status: str
    run_status: str
    detail: str
    model_version: str | None
    rounds_completed: int | None
    sites_participated: tuple[str, ...]
    sites_dropped: dict[str, str]
    final_auc_pooled: float | None
    final_auc_weighted: float | None
    rounds: tuple[dict[str, Any], ...]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def _run_summary(study: Study) -> Mapping[str, Any]:
    """The finished study's ML result, or while it releases, the run in its state."""
    result = (study.result or {}).get("result")
    if isinstance(result, Mapping) and "figures" in result:
        return result
    run = ((study.driver_state or {}).get("state") or {}).get(RESULT_STATE) or {}
    outcome = run.get("result")
    if not isinstance(outcome, Mapping):
        return {}
    return {**outcome, "rounds": run.get("rounds", []), "figures": run.get("figures", {})}


def ml_figures_of(study: Study) -> MlFigures:
    """The page's content; NotFound for a study that is not ML, Conflict before figures."""
    if not is_ml(study):
        raise NotFound(
            f"study {study.id!r} is not an ML study (analysis: flower), so it has no figures",
            code="not_an_ml_study",
        )
    summary = _run_summary(study)
    figures = summary.get("figures") or {}
    rounds = summary.get("rounds") or []
    if not figures or not rounds:
        why = str(summary.get("detail") or "") if summary else ""
        raise Conflict(
            f"ML study {study.id!r} has no figures yet (status {study.status}"
            + (f"; the Flower run: {why}" if why else "")
            + "): they appear once its Flower run has recorded rounds",
            code="figures_not_ready",
        )
    ml = (study.spec or {}).get("ml") or {}
    return MlFigures(
        study_id=study.id,
        title=study.title,
        model_name=str(ml.get("name", "")),
        status=study.status,
        run_status=str(summary.get("status") or ""),
        detail=str(summary.get("detail") or ""),
        model_version=summary.get("model_version"),
        rounds_completed=summary.get("rounds_completed"),
        sites_participated=tuple(str(s) for s in summary.get("sites_participated") or ()),
        sites_dropped={str(k): str(v) for k, v in (summary.get("sites_dropped") or {}).items()},
        final_auc_pooled=summary.get("final_auc_pooled"),
        final_auc_weighted=summary.get("final_auc_weighted"),
        rounds=tuple(dict(r) for r in rounds),
        figures={str(k): dict(v) for k, v in figures.items()},
    )


def load_ml_figures(db: Database, study_id: str) -> MlFigures:
    """No access check: the caller has made it (the API) or is the hub's operator (CLI)."""
    with db.session() as session:
        return ml_figures_of(repository.get_study(session, study_id))


def figures_page(db: Database, study_id: str) -> str:
    return render_page(load_ml_figures(db, study_id))


# --- the HTML ---


def _escape_text(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, list):
        return [_escape_text(v) for v in value]
    return value


def escaped_figure(figure: Mapping[str, Any]) -> dict[str, Any]:
    """The figure with its traces' text escaped: plotly.js reads tags in legend text."""
    data = [
        {k: _escape_text(v) if k in TRACE_TEXT else v for k, v in trace.items()}
        for trace in figure.get("data", [])
    ]
    return {**figure, "data": data}


def _ordered(figures: Mapping[str, Any]) -> list[str]:
    known = [name for name in CAPTIONS if name in figures]
    return known + sorted(name for name in figures if name not in CAPTIONS)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _facts(page: MlFigures) -> str:
    dropped = (
        ", ".join(f"{html.escape(s)} ({html.escape(r)})" for s, r in page.sites_dropped.items())
        or "none"
    )
    run = html.escape(page.run_status or "unknown")
    if page.detail:
        run += f" — {html.escape(page.detail)}"
    rows = [
        ("Study", html.escape(page.title or page.model_name or "(untitled)")),
        ("Model name", html.escape(page.model_name or "–")),
        ("Study id", f"<code>{html.escape(page.study_id)}</code>"),
        ("Study status", html.escape(page.status)),
        ("Flower run", run),
        ("Model version", f"<code>{html.escape(page.model_version or '–')}</code>"),
        ("Rounds completed", _number(page.rounds_completed)),
        ("Final held-out AUC (pooled / site-weighted)", _auc_pair(page)),
        ("Sites that took part", ", ".join(map(html.escape, page.sites_participated)) or "none"),
        ("Sites dropped", dropped),
    ]
    body = "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">\n{body}\n</table>'


def _auc_pair(page: MlFigures) -> str:
    return f"{_number(page.final_auc_pooled)} / {_number(page.final_auc_weighted)}"


def _site_table(rounds: Sequence[Mapping[str, Any]]) -> str:
    """Each site's held-out n, loss and AUC of the last model evaluated."""
    evals = [r for r in rounds if r.get("eval_model_round") is not None]
    if not evals:
        return ""
    last = evals[-1]
    metrics = sorted(
        (m for m in last.get("site_metrics") or [] if m.get("phase") == "eval"),
        key=lambda m: str(m.get("site")),
    )
    if not metrics:
        return ""
    body = "\n".join(
        f"<tr><td>{html.escape(str(m.get('site')))}</td><td>{_number(m.get('n'))}</td>"
        f"<td>{_number(m.get('loss'))}</td><td>{_number(m.get('auc'))}</td></tr>"
        for m in metrics
    )
    return (
        '<section id="site-metrics"><h2>Each site\'s held-out metrics</h2>\n'
        f"<p>The model after round {_number(last['eval_model_round'])}, evaluated on each "
        "site's own held-out rows (n rows, loss, AUC), next to the pooled figures above.</p>\n"
        '<table class="sites"><tr><th>site</th><th>n</th><th>loss</th><th>AUC</th></tr>\n'
        f"{body}\n</table></section>"
    )


def _figure_section(name: str, figure: Mapping[str, Any]) -> str:
    import plotly.io as pio

    slug = re.sub(r"[^a-z0-9_-]", "-", name.lower())
    div = pio.to_html(
        escaped_figure(figure),
        full_html=False,
        include_plotlyjs=False,
        div_id=f"figure-{slug}",
        default_height="450px",  # a fixed height: the section around it has none
        config={"displaylogo": False, "responsive": True},
    )
    title = (figure.get("layout", {}).get("title") or {}).get("text") or name
    caption = CAPTIONS.get(name, OTHER_CAPTION)
    return (
        f'<section class="figure" id="section-{slug}"><h2>{html.escape(str(title))}</h2>\n'
        f'{div}\n<p class="caption">{html.escape(caption)}</p></section>'
    )


STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; }
.caption { color: #444; max-width: 50em; }
section { margin-top: 2em; }
"""


def render_page(page: MlFigures) -> str:
    """The whole page: plotly.js once, inline, then the facts and one section per figure."""
    from plotly.offline import get_plotlyjs

    name = html.escape(page.title or page.model_name or page.study_id)
    sections = "\n".join(_figure_section(n, page.figures[n]) for n in _ordered(page.figures))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>ML study figures: {name}</title>\n"
        f"<style>{STYLE}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        "</head><body>\n"
        f"<h1>ML study figures: {name}</h1>\n"
        f"{_facts(page)}\n{sections}\n{_site_table(page.rounds)}\n"
        "</body></html>\n"
    )
