"""Who may run which edge command, where the acting user's token comes from, and the
token file that bootstraps the first site operator.

`COMMAND_ROLES` is the one table the CLI enforces (docs/edge-security.md explains
it); a command not in it must be in `OPEN_COMMANDS`, with the reason it needs no
token. A test walks the CLI and fails on a command that is in neither.

The acting token, first found wins: `--token`, `--token-file` on the command line,
then `ONCOFED_EDGE_TOKEN`, `ONCOFED_EDGE_TOKEN_FILE` in the environment. A token
file holds one token and must be readable by its owner only (mode 0600), like
the site secret.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from edge_node.security.users import (
    ENV_TOKEN,
    Role,
    User,
    add_user,
    has_site_operator,
    require_role,
    state_engine,
)
from edge_node.settings import EdgeSettings
from shared_cdm.errors import Conflict, InvalidInput, Unauthenticated

ENV_TOKEN_FILE = "ONCOFED_EDGE_TOKEN_FILE"
_MAX_TOKEN_FILE = 4096

OPERATOR = frozenset({Role.SITE_OPERATOR})
# Read-only views of what the site serves and released; never source or identified data.
VIEWER = frozenset({Role.SITE_OPERATOR, Role.CLINICIAN})
BROKER = frozenset({Role.HONEST_BROKER})

COMMAND_ROLES: dict[str, frozenset[Role]] = {
    # reads hospital sources or identified rows, or writes the CDM
    "sync": OPERATOR,
    "mapping suggest": OPERATOR,
    "quarantine list": OPERATOR,
    "export-omop": OPERATOR,
    # changes what the site serves or answers
    "dataset add": OPERATOR,
    "dataset remove": OPERATOR,
    "tasks approve": OPERATOR,
    "tasks reject": OPERATOR,
    "run": OPERATOR,
    # the edge's users and its audit log
    "users add": OPERATOR,
    "users list": OPERATOR,
    "users disable": OPERATOR,
    "audit list": OPERATOR,
    "audit verify": OPERATOR,
    # what the site serves, was asked and released, and under which rules
    "dataset list": VIEWER,
    "tasks list": VIEWER,
    "ledger list": VIEWER,
    "ledger budget": VIEWER,
    "policy show": VIEWER,
    # applies a released model to the site's de-identified patients, stores the scores
    "predict": VIEWER,
    "reidentify": BROKER,
}

OPEN_COMMANDS: dict[str, str] = {
    "init": "creates the edge; with --operator it bootstraps the first site operator",
    "vault init": "makes or checks the vault key; prints no data and no key",
    "vault status": "says where the vault key comes from; prints no data and no key",
    "deid-text": "file to file (contracts/deid.md): reads only the file it is given",
    "deid-eval": "scores the de-identifier on annotated files shipped in the package",
    "structure": "file to file (contracts/structured-report.md)",
    "structure-eval": "scores the structurer on the reports and truth file it is given",
    "ocr-labs": "file to file (contracts/lab-ocr.md)",
    "ocr-eval": "scores lab-sheet OCR on the sheets and truth file it is given",
    "frames": "file to file: OCR of one video's frames, written where the operator says",
}


def roles_for(command: str) -> frozenset[Role]:
    try:
        return COMMAND_ROLES[command]
    except KeyError:
        raise ValueError(f"command {command!r} has no entry in COMMAND_ROLES") from None


def read_token_file(path: Path) -> str:
    """The token in `path`; InvalidInput for a missing, empty, shared or odd file."""
    path = Path(path).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise InvalidInput(f"token file {path} does not exist", code="bad_token_file") from None
    except OSError as exc:
        raise InvalidInput(
            f"token file {path} cannot be read: {exc.strerror}", code="bad_token_file"
        ) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"token file {path} is not a regular file", code="bad_token_file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise InvalidInput(
                f"token file {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); restrict it with "
                f"`chmod 600 {path}` and run again",
                code="insecure_token_file",
            )
        raw = f.read(_MAX_TOKEN_FILE + 1)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(raw) > _MAX_TOKEN_FILE or len(token.split()) != 1:
        raise InvalidInput(
            f"token file {path} must hold one token (the line `users add` or "
            "`init --operator` printed)",
            code="bad_token_file",
        )
    return token


def _source(name: str) -> click.core.ParameterSource | None:
    ctx = click.get_current_context(silent=True)
    return ctx.get_parameter_source(name) if ctx is not None else None


def acting_token(token: str | None, token_file: Path | None) -> str | None:
    """The token to act with: the command line before the environment, and at each
    level a token before a token file."""
    from_cli = click.core.ParameterSource.COMMANDLINE
    if (
        token_file is not None
        and _source("token_file") is from_cli
        and _source("token") != from_cli
    ):
        return read_token_file(token_file)
    if token:
        return token
    if token_file is not None:
        return read_token_file(token_file)
    return None


def gate(
    settings: EdgeSettings,
    command: str,
    token: str | None,
    token_file: Path | None,
    *,
    target: str = "",
) -> User:
    """The acting user if they hold a role `command` needs; every decision is audited
    (action `command`, spaces as dots)."""
    try:
        return require_role(
            settings,
            acting_token(token, token_file),
            roles_for(command),
            action=command.replace(" ", "."),
            target=target,
        )
    except Unauthenticated as exc:
        with state_engine(settings) as engine:
            if has_site_operator(engine):
                raise
        raise Unauthenticated(
            f"{exc.message}; the edge has no site operator yet: add the first with "
            "`oncofed-edge users add NAME --role site_operator` (no token needed)",
            code=exc.code,
        ) from exc


@contextmanager
def _new_private_file(path: Path) -> Iterator[int]:
    """A new, empty file only its owner can read; removed again if the body fails."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(
            f"token file {path} already exists; refusing to overwrite it "
            "(remove it, or name another file)",
            code="token_file_exists",
        ) from None
    except OSError as exc:
        raise InvalidInput(
            f"cannot create token file {path}: {exc.strerror}", code="bad_token_file"
        ) from None
    try:
        yield fd
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def bootstrap_operator(settings: EdgeSettings, name: str, token_file: Path | None) -> str | None:
    """Add the edge's first site operator `name`; the token goes to `token_file`
    (created, mode 0600) and None is returned, or without a file the token is returned.

    Raises Conflict when the edge already has an active site operator: from then on
    users are added with `users add` by an operator."""
    with state_engine(settings) as engine:
        if has_site_operator(engine):
            raise Conflict(
                "the edge already has a site operator: add users with "
                f"`oncofed-edge users add` (an operator's token in --token or {ENV_TOKEN})",
                code="operator_exists",
            )
        if token_file is None:
            return add_user(engine, name, [Role.SITE_OPERATOR], token=None)[1]
        path = Path(token_file).expanduser()
        if not path.parent.is_dir():
            raise InvalidInput(
                f"cannot create token file {path}: no folder {path.parent}", code="bad_token_file"
            )
        with _new_private_file(path) as fd:
            token = add_user(engine, name, [Role.SITE_OPERATOR], token=None)[1]
            os.write(fd, (token + "\n").encode("ascii"))
            os.fsync(fd)
        return None
