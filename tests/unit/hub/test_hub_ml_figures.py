"""The HTML page of an ML study's figures: over REST (`GET .../figures`) and from
`oncofed-hub study figures`. The study is trained as in test_hub_ml.py (the
ServerApp's loop in process on a fake grid); the page's plotted numbers are read
back out of its embedded JSON and compared with the rounds in `ml_rounds`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from hub.api.app import create_app
from hub.auth import UserView
from hub.bootstrap import Hub
from hub.cli import app as cli_app
from hub.db.models import MlRound, MlRun, Role
from hub.studies.ml import figures
from hub.studies.ml_page import MlFigures, render_page
from protocol.messages import ResultStatus
from shared_cdm.errors import EXIT_CODES, ErrorKind
from tests.unit.hub import test_hub_ml as trained_ml
from tests.unit.hub.hub_testkit import FakeClock, make_user

ml_hub = trained_ml.ml_hub  # the fixture: a hub with Flower on and sites A, B, C
EVIL = '<script>alert("x")</script>'
PLOT_DIV = re.compile(r'<div id="figure-([a-z0-9_-]+)" class="plotly-graph-div"')


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(ml_hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(ml_hub.settings, hub=ml_hub)) as c:
        yield c


@pytest.fixture
def people(ml_hub: Hub) -> dict[str, tuple[UserView, str]]:
    """rita owns the studies, olga is another researcher, carl the coordinator."""
    return {
        name: make_user(ml_hub, name, role)
        for name, role in (
            ("rita", Role.RESEARCHER),
            ("olga", Role.RESEARCHER),
            ("carl", Role.COORDINATOR),
        )
    }


@pytest.fixture
def tokens(people: dict[str, tuple[UserView, str]]) -> dict[str, str]:
    return {name: token for name, (_, token) in people.items()}


@dataclass
class Env:
    """What a page test needs: the hub, its REST client, the people and their tokens."""

    hub: Hub
    client: TestClient
    people: dict[str, tuple[UserView, str]]
    tokens: dict[str, str]
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch

    def train(self, *, release: bool, **over: Any) -> str:
        return _train(
            self.hub, self.people, self.tmp_path, self.monkeypatch, release=release, **over
        )


@pytest.fixture
def env(
    ml_hub: Hub,
    client: TestClient,
    people: dict[str, tuple[UserView, str]],
    tokens: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Env:
    return Env(ml_hub, client, people, tokens, tmp_path, monkeypatch)


def _train(
    hub: Hub,
    people: dict[str, tuple[UserView, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    release: bool,
    **over: Any,
) -> str:
    """rita's ML study trained on A and B (C refuses); released too when `release`."""
    assert hub.flower is not None
    trained_ml.fake_run(hub.flower, monkeypatch)
    owner, coordinator = people["rita"][0], people["carl"][0]
    study_id = trained_ml.join(hub, owner, coordinator, **over)
    hub.studies.sweep()
    trained_ml.answer(hub, "A", {"supernode": "started"}, ResultStatus.OK)
    trained_ml.answer(hub, "B", {"supernode": "started"}, ResultStatus.OK)
    trained_ml.run_server_loop(hub, study_id, tmp_path)
    hub.studies.sweep()
    if release:
        trained_ml.answer(hub, "A", {"model_stored": True}, ResultStatus.OK)
        trained_ml.answer(hub, "B", {"model_stored": True}, ResultStatus.OK)
    return study_id


def _plots(page: str) -> dict[str, dict[str, Any]]:
    """Each plot div's figure, decoded from the `Plotly.newPlot(id, data, layout)` call."""
    out = {}
    decoder = json.JSONDecoder()
    for name in PLOT_DIV.findall(page):
        call = re.search(r'Plotly\.newPlot\(\s*"figure-' + re.escape(name) + r'",\s*', page)
        assert call is not None, name
        data, end = decoder.raw_decode(page, call.end())
        comma = re.compile(r",\s*").match(page, end)
        assert comma is not None, name
        layout, _ = decoder.raw_decode(page, comma.end())
        out[name] = {"data": data, "layout": layout}
    return out


def _db_rounds(hub: Hub, study_id: str) -> list[MlRound]:
    with hub.db.session() as session:
        rows = session.scalars(
            sa.select(MlRound).where(MlRound.study_id == study_id).order_by(MlRound.server_round)
        ).all()
        session.expunge_all()
        return list(rows)


def _get(client: TestClient, study_id: str, token: str | None) -> Any:
    headers = _auth(token) if token else {}
    return client.get(f"/api/v1/studies/{study_id}/figures", headers=headers)


def test_the_page_plots_the_recorded_rounds(env: Env) -> None:
    study_id = env.train(release=True)
    response = _get(env.client, study_id, env.tokens["rita"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!DOCTYPE html>")

    plots = _plots(page)
    assert list(plots) == ["loss", "auc", "calibration"]
    assert page.count('class="plotly-graph-div"') == 3
    rounds = _db_rounds(env.hub, study_id)
    assert [r.server_round for r in rounds] == [1, 2, 3]
    trained = [r for r in rounds if r.train_loss is not None]
    evals = [r for r in rounds if r.eval_model_round is not None]
    assert trained and evals
    loss, held_out = plots["loss"]["data"]
    assert loss["x"] == [r.server_round for r in trained]
    assert loss["y"] == pytest.approx([r.train_loss for r in trained])
    assert held_out["x"] == [r.eval_model_round for r in evals]
    assert held_out["y"] == pytest.approx([r.eval_loss for r in evals])
    pooled, weighted, *sites = plots["auc"]["data"]
    assert pooled["y"] == pytest.approx([r.eval_auc_pooled for r in evals])
    assert weighted["y"] == pytest.approx([r.eval_auc_weighted for r in evals])
    # Each site's own held-out AUC, as the sites reported it to the ServerApp.
    for trace, site in zip(sites, ("A", "B"), strict=True):
        assert trace["name"] == f"{site} held-out AUC"
        recorded = [
            m["auc"]
            for r in evals
            for m in r.site_metrics
            if m["site"] == site and m["phase"] == "eval" and m["auc"] is not None
        ]
        assert trace["y"] == pytest.approx(recorded)
    bins = [(p, o) for n, p, o in evals[-1].calibration if n]
    calibration = plots["calibration"]["data"][0]
    assert calibration["x"] == pytest.approx([p for p, _ in bins])
    assert calibration["y"] == pytest.approx([o for _, o in bins])

    # plotly.js inline, and nothing fetched from elsewhere.
    assert get_plotlyjs() in page
    assert "<script src" not in page.lower()
    assert 'src="http' not in page.lower()
    assert page.count("<script") == 1 + 3  # plotly.js, then one per figure
    with env.hub.db.session() as session:
        run = session.get(MlRun, study_id)
        assert run is not None and run.model_version
        version = run.model_version
    assert f"<code>{version}</code>" in page
    assert "<tr><th>Rounds completed</th><td>2</td></tr>" in page
    assert "<tr><th>Sites that took part</th><td>A, B</td></tr>" in page
    assert "<tr><th>Study status</th><td>completed</td></tr>" in page
    assert "each site&#x27;s own held-out AUC" in page  # a figure's caption


def test_the_page_is_there_while_the_model_is_released(env: Env) -> None:
    study_id = env.train(release=False)
    response = _get(env.client, study_id, env.tokens["carl"])  # a coordinator reads it too
    assert response.status_code == 200, response.text
    assert "<tr><th>Study status</th><td>running</td></tr>" in response.text
    evals = [r for r in _db_rounds(env.hub, study_id) if r.eval_model_round is not None]
    pooled = _plots(response.text)["auc"]["data"][0]
    assert pooled["y"] == pytest.approx([r.eval_auc_pooled for r in evals])


def test_the_study_name_is_escaped(env: Env) -> None:
    study_id = env.train(release=True, name=EVIL)
    page = _get(env.client, study_id, env.tokens["rita"]).text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert page.count("<script") == 4


def test_a_site_name_is_escaped_in_the_text_and_in_the_legend() -> None:
    rounds = [
        {
            "server_round": 1,
            "train_loss": 0.6,
            "eval_model_round": 1,
            "eval_loss": 0.5,
            "eval_auc_pooled": 0.8,
            "eval_auc_weighted": 0.79,
            "calibration": [[10, 0.2, 0.1]],
            "site_metrics": [
                {"site": EVIL, "phase": "eval", "model_round": 1, "n": 40, "loss": 0.4, "auc": 0.7}
            ],
        }
    ]
    page = render_page(
        MlFigures(
            study_id="s-1",
            title="lung <b>5y</b>",
            model_name="m",
            status="completed",
            run_status="completed",
            detail="",
            model_version="abc",
            rounds_completed=1,
            sites_participated=(EVIL,),
            sites_dropped={"<img src=x onerror=alert(1)>": "no reply in round 1"},
            final_auc_pooled=0.8,
            final_auc_weighted=0.79,
            rounds=tuple(rounds),
            figures=figures(rounds),
        )
    )
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert f"<tr><th>Sites that took part</th><td>{escaped}</td></tr>" in page
    assert f"<tr><td>{escaped}</td><td>40</td><td>0.400</td><td>0.700</td></tr>" in page
    assert "&lt;img src=x onerror=alert(1)&gt; (no reply in round 1)" in page
    assert "<h1>ML study figures: lung &lt;b&gt;5y&lt;/b&gt;</h1>" in page
    assert "<img" not in page and "<script>alert" not in page
    # In the legend too: plotly.js would read tags in a trace's name.
    site_trace = _plots(page)["auc"]["data"][2]
    assert site_trace["name"] == f"{escaped} held-out AUC"
    assert page.count("<script") == 4


def test_who_may_read_the_page(env: Env) -> None:
    study_id = env.train(release=True)
    none = _get(env.client, study_id, None)
    assert none.status_code == 401
    assert none.headers["WWW-Authenticate"] == "Bearer"
    other = _get(env.client, study_id, env.tokens["olga"])
    assert (other.status_code, other.json()["code"]) == (404, "study_not_found")
    assert "<html" not in other.text
    unknown = _get(env.client, "no-such-study", env.tokens["carl"])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "study_not_found")
    assert _get(env.client, study_id, env.tokens["carl"]).status_code == 200


def test_a_study_that_is_not_ml_has_no_figures(env: Env) -> None:
    owner = env.people["rita"][0]
    study = env.hub.studies.submit(owner, {"analysis": "count"}, sites=list(trained_ml.SITES))
    response = _get(env.client, study.id, env.tokens["rita"])
    assert response.status_code == 404
    assert response.json()["code"] == "not_an_ml_study"
    assert "is not an ML study" in response.json()["detail"]


def test_an_ml_study_before_its_rounds_has_no_figures_yet(env: Env, clock: FakeClock) -> None:
    assert env.hub.flower is not None
    trained_ml.fake_run(env.hub.flower, env.monkeypatch)
    owner, coordinator = env.people["rita"][0], env.people["carl"][0]
    study_id = trained_ml.join(env.hub, owner, coordinator)
    waiting = _get(env.client, study_id, env.tokens["rita"])
    assert (waiting.status_code, waiting.json()["code"]) == (409, "figures_not_ready")
    assert "has no figures yet" in waiting.json()["detail"]

    # A run that never reports ends with empty figures: still no page, and why.
    env.hub.studies.sweep()
    trained_ml.answer(env.hub, "A", {"supernode": "started"}, ResultStatus.OK)
    trained_ml.answer(env.hub, "B", {"supernode": "started"}, ResultStatus.OK)
    clock.advance(61)
    env.hub.studies.sweep()
    trained_ml.answer(env.hub, "A", {"model_stored": False}, ResultStatus.OK)
    trained_ml.answer(env.hub, "B", {"model_stored": False}, ResultStatus.OK)
    assert env.hub.studies.get(owner, study_id).status == "completed"
    failed = _get(env.client, study_id, env.tokens["rita"])
    assert (failed.status_code, failed.json()["code"]) == (409, "figures_not_ready")
    assert "no result in time" in failed.json()["detail"]


def test_the_cli_writes_the_same_page(env: Env, db_url: str) -> None:
    study_id = env.train(release=True)
    home = env.tmp_path / "operator-home"
    home.mkdir()
    (home / "hub.toml").write_text(f'db_url = "{db_url}"\n', encoding="utf-8")
    out = env.tmp_path / "figures.html"
    runner = CliRunner()
    result = runner.invoke(
        cli_app, ["study", "figures", study_id, "--out", str(out), "--home", str(home)]
    )
    assert result.exit_code == 0, result.stderr
    assert out.read_text(encoding="utf-8") == _get(env.client, study_id, env.tokens["rita"]).text

    missing = runner.invoke(
        cli_app, ["study", "figures", "no-such-study", "--out", str(out), "--home", str(home)]
    )
    assert missing.exit_code == EXIT_CODES[ErrorKind.NOT_FOUND]
    assert "no study 'no-such-study'" in missing.stderr
    nowhere = env.tmp_path / "no-such-dir" / "figures.html"
    unwritable = runner.invoke(
        cli_app, ["study", "figures", study_id, "--out", str(nowhere), "--home", str(home)]
    )
    assert unwritable.exit_code == EXIT_CODES[ErrorKind.INVALID]
    assert "cannot write" in unwritable.stderr and not nowhere.exists()
