"""Edge settings: built once by `load_settings(home)` and passed to whatever needs them.

Precedence, highest first: explicit overrides, `ONCOFED_EDGE_<FIELD>` environment
variables, `HOME/edge.toml`, defaults (several of which live under HOME).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from protocol.tls import TlsFiles, validate_party_name
from shared_cdm.errors import InvalidInput

SETTINGS_FILE = "edge.toml"
POLICY_FILE = "policy.toml"
_PATH_FIELDS = ("tls_ca_cert", "tls_cert", "tls_key", "policy_file", "mapping_file")


class _HomeTomlSource(PydanticBaseSettingsSource):
    """Reads HOME/edge.toml, HOME being the `home` the caller passed in."""

    def __init__(self, settings_cls: type[BaseSettings], init: InitSettingsSource) -> None:
        super().__init__(settings_cls)
        self._home = init.init_kwargs.get("home")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ returns the whole file at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self._home is None:
            return {}
        path = Path(self._home) / SETTINGS_FILE
        if not path.exists():
            return {}
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path} is not valid TOML: {exc}") from exc


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONCOFED_EDGE_", extra="forbid", frozen=True)

    home: Path
    site_name: str
    hub_address: str
    tls_ca_cert: Path
    tls_cert: Path
    tls_key: Path
    state_db_url: str
    analysis_db_url: str
    policy_file: Path
    # The site mapping `oncofed-edge sync` reads (docs/edge-pipeline.md).
    mapping_file: Path
    poll_interval_s: float = Field(2.0, gt=0)
    hub_server_name: str = "localhost"
    # Each RPC's deadline, and the bounded backoff for UNAVAILABLE / DEADLINE_EXCEEDED.
    rpc_timeout_s: float = Field(10.0, gt=0)
    retry_attempts: int = Field(6, ge=1)
    retry_initial_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(5.0, gt=0)
    max_tasks_per_pull: int = Field(16, ge=1, le=1000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not isinstance(init_settings, InitSettingsSource):
            return (init_settings, env_settings)
        return (init_settings, env_settings, _HomeTomlSource(settings_cls, init_settings))

    @model_validator(mode="before")
    @classmethod
    def _defaults_under_home(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "home" not in data:
            return data
        home = Path(data["home"]).expanduser().resolve()
        out = dict(data, home=home)
        out.setdefault("state_db_url", f"sqlite:///{home / 'edge.db'}")
        out.setdefault("analysis_db_url", f"sqlite:///{home / 'analysis.db'}")
        site = out.get("site_name")
        defaults = {
            "tls_ca_cert": "tls/ca.crt",
            "policy_file": POLICY_FILE,
            "mapping_file": "mapping.yaml",
        }
        if isinstance(site, str):
            defaults |= {"tls_cert": f"tls/{site}.crt", "tls_key": f"tls/{site}.key"}
        for name in _PATH_FIELDS:
            given = out.get(name) or defaults.get(name)
            if given is not None:
                # Relative paths in edge.toml are relative to HOME, not to the working directory.
                out[name] = home / Path(given).expanduser()
        return out

    @field_validator("site_name")
    @classmethod
    def _valid_site_name(cls, v: str) -> str:
        try:
            return validate_party_name(v)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("hub_address")
    @classmethod
    def _host_and_port(cls, v: str) -> str:
        return validate_hub_address(v)

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(ca_cert=self.tls_ca_cert, cert=self.tls_cert, key=self.tls_key)


def validate_hub_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"hub address {address!r} must be HOST:PORT with a port in 1-65535")
    return address


def load_settings(home: Path, **overrides: Any) -> EdgeSettings:
    """Settings for the edge whose data live in `home`; `overrides` win over everything."""
    try:
        return EdgeSettings(home=home, **overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        hint = ""
        if not (Path(home) / SETTINGS_FILE).exists():
            hint = f" (no {SETTINGS_FILE} there: run `oncofed-edge init --home {home}` first)"
        raise InvalidInput(f"edge settings in {home} are invalid: {problems}{hint}") from exc
