"""The Flower App directory that `flwr run` turns into a FAB.

The FAB holds only a pyproject.toml (the spec and the result locations as run
config) and two one-line modules naming our ClientApp and ServerApp. They are
separate so that each ClientApp process (Flower starts one per message) imports
the client side only, not the ServerApp and its strategies. The code
itself is the installed `federated_ml` package, the same on the hub and at
every site, so nothing is installed at run time and the FAB's hash changes
only when the study does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from federated_ml import ALGORITHM_VERSION
from federated_ml.flower.server_app import RUN_MODEL_DIR, RUN_RESULTS_DB, RUN_RESULTS_DIR, RUN_SPEC
from federated_ml.flower.spec import MLStudySpec

APP_MODULE = "oncofed_flower_app"  # the ClientApp's module
SERVER_MODULE = "oncofed_flower_server"

_CLIENT_TEXT = '''"""The ClientApp of an OncoFed ML study; the code is in federated_ml.flower."""

from federated_ml.flower.client_app import app as clientapp

__all__ = ["clientapp"]
'''
_SERVER_TEXT = '''"""The ServerApp of an OncoFed ML study; the code is in federated_ml.flower."""

from federated_ml.flower.server_app import app as serverapp

__all__ = ["serverapp"]
'''


def _toml_string(value: str) -> str:
    # A JSON string literal is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=True)


def write_app_bundle(
    directory: Path, spec: MLStudySpec, *, results_db: Path, results_dir: Path, model_dir: Path
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    # Flower refuses app names over 32 characters: "oncofed-ml-" leaves 21.
    project = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:21].strip("-") or "study"
    config = {
        RUN_SPEC: spec.to_json(),
        RUN_RESULTS_DB: str(results_db.resolve()),
        RUN_RESULTS_DIR: str(results_dir.resolve()),
        RUN_MODEL_DIR: str(model_dir.resolve()),
    }
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f"name = {_toml_string('oncofed-ml-' + project)}",
        f"version = {_toml_string(ALGORITHM_VERSION)}",
        'description = "OncoFed federated ML study"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        'publisher = "oncofed"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{SERVER_MODULE}:serverapp"',
        f'clientapp = "{APP_MODULE}:clientapp"',
        "",
        "[tool.flwr.app.config]",
        *(f"{key} = {_toml_string(value)}" for key, value in config.items()),
        "",
    ]
    (directory / "pyproject.toml").write_text("\n".join(lines), encoding="utf-8")
    (directory / f"{APP_MODULE}.py").write_text(_CLIENT_TEXT, encoding="utf-8")
    (directory / f"{SERVER_MODULE}.py").write_text(_SERVER_TEXT, encoding="utf-8")
    return directory
