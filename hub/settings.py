"""Hub settings: built once by `load_settings(home)` and passed to whatever needs them.

Precedence, highest first: explicit overrides, `ONCOFED_HUB_<FIELD>` environment
variables, `HOME/hub.toml`, defaults (several of which live under HOME).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from federated_ml.analyses import known_analyses
from hub.studies.rules import DEFAULT_MIN_SITES
from protocol.tls import TlsFiles
from shared_cdm.errors import InvalidInput, NotFound

SETTINGS_FILE = "hub.toml"
_PATH_FIELDS = ("tls_ca_cert", "tls_cert", "tls_key")


class _HomeTomlSource(PydanticBaseSettingsSource):
    """Reads HOME/hub.toml, HOME being the `home` the caller passed in."""

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


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONCOFED_HUB_", extra="forbid", frozen=True)

    home: Path
    db_url: str
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    tls_ca_cert: Path
    tls_cert: Path
    tls_key: Path
    auto_approve: bool = False
    environment: Literal["development", "production"] = "development"
    heartbeat_interval_s: int = Field(10, gt=0)
    task_deadline_s: int = Field(3600, gt=0)
    max_message_bytes: int = Field(4 * 1024 * 1024, gt=1024)
    node_offline_after_s: int = Field(60, gt=0)
    # How often the background loop looks for expired tasks.
    sweep_interval_s: float = Field(2.0, gt=0)
    # Analysis -> fewest sites a result may come from (`[min_sites]` in hub.toml).
    # Entries override the defaults one by one, so setting one analysis never
    # lowers another's; an analysis listed nowhere needs one site.
    min_sites: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MIN_SITES))
    # ML studies: the hub runs a Flower SuperLink (TLS with the hub's certificate).
    flower_enabled: bool = False
    flower_port: int = Field(0, ge=0, le=65535)  # 0: a free port
    # The host SuperNodes dial for the SuperLink (the hub's address as edges see it).
    # Empty: grpc_host, where the SuperLink binds (the tunnel address on a real network).
    flower_public_host: str = ""

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

    @field_validator("min_sites", mode="after")
    @classmethod
    def _merge_min_sites(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(known_analyses()))
        if unknown:
            raise ValueError(
                f"unknown analysis {', '.join(unknown)}; known: {', '.join(known_analyses())}"
            )
        low = sorted(name for name, n in value.items() if n < 1)
        if low:
            raise ValueError(f"must be at least 1 for {', '.join(low)}")
        return {**DEFAULT_MIN_SITES, **value}

    @model_validator(mode="before")
    @classmethod
    def _defaults_under_home(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "home" not in data:
            return data
        home = Path(data["home"]).expanduser().resolve()
        out = dict(data, home=home)
        out.setdefault("db_url", f"sqlite:///{home / 'hub.db'}")
        defaults = {
            "tls_ca_cert": "tls/ca.crt",
            "tls_cert": "tls/hub.crt",
            "tls_key": "tls/hub.key",
        }
        for name in _PATH_FIELDS:
            # Relative paths in hub.toml are relative to HOME, not to the working directory.
            out[name] = home / Path(out.get(name) or defaults[name]).expanduser()
        return out

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(ca_cert=self.tls_ca_cert, cert=self.tls_cert, key=self.tls_key)

    def check_startable(self) -> None:
        """Refuse to serve without the mutual-TLS files (the hub never serves in the clear)."""
        missing = [
            str(p) for p in (self.tls_ca_cert, self.tls_cert, self.tls_key) if not p.exists()
        ]
        if missing:
            hint = "" if self.environment == "production" else " (make them with `oncofed-ops`)"
            raise NotFound(
                f"the hub needs its TLS files to start ({self.environment}); missing: "
                + ", ".join(missing)
                + hint,
                code="tls_files_missing",
            )


def load_settings(home: Path, **overrides: Any) -> HubSettings:
    """Settings for the hub whose data live in `home`; `overrides` win over everything."""
    try:
        return HubSettings(home=home, **overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(f"hub settings in {home} are invalid: {problems}") from exc
