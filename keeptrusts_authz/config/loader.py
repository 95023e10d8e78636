"""Load `keeptrusts.yaml` into the model tree, turning pydantic errors into path-named messages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keeptrusts_authz.config.models import Config, LedgerSettings


class ConfigError(Exception):
    """The config cannot be used; `errors` holds one line per problem, each starting with a path."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# A validator message that starts with a (relative) path: `sentinel_master: required when ...`.
_PATHED = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.+)$", re.S)


def _describe(err: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = _path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    pathed = _PATHED.match(msg) if err["type"] == "value_error" else None
    if pathed:
        # Model validators name the offending field relative to their model (the top-level
        # validator: from the root), so join it to the model's own path.
        return f"{_path(loc)}.{msg}" if loc else msg
    return f"{path}: {msg}"


def parse_config(data: object, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None


# Looked for, in this order, in the working directory when neither --config nor
# $KEEPTRUSTS_CONFIG names a file: an operator's own config, then the example a checkout ships
# (what README's commands use after `make run`).
DEFAULT_CONFIG_PATHS = (Path("config/keeptrusts.yaml"), Path("config/keeptrusts.example.yaml"))


def find_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file to load: `path`, else $KEEPTRUSTS_CONFIG, else the first default that exists.

    The one place that decides where the config comes from (every command calls it).
    """
    raw_path = path or os.environ.get("KEEPTRUSTS_CONFIG")
    if raw_path:
        return Path(raw_path)
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.is_file():
            return candidate
    looked = " or ".join(str(c) for c in DEFAULT_CONFIG_PATHS)
    raise ConfigError(
        "<config>",
        [f"no config file given (--config or KEEPTRUSTS_CONFIG) and no {looked} here"],
    )


# Environment overrides of server.signing (a Secret mounted where the config file cannot say).
SIGNING_ENV = {
    "KEEPTRUSTS_SIGNING_KEY_FILE": "key_file",
    "KEEPTRUSTS_SIGNING_PREVIOUS_KEY_FILE": "previous_key_file",
}


def _signing_from_environment(data: object) -> object:
    """Applied to the raw document before validation, so the cross-checks see the override."""
    given = {field: os.environ[var] for var, field in SIGNING_ENV.items() if os.environ.get(var)}
    if not given:
        return data
    if data is None:
        data = {}
    if isinstance(data, dict):
        server = data.setdefault("server", {})
        if isinstance(server, dict):
            signing = server.setdefault("signing", {})
            if isinstance(signing, dict):
                signing.update(given)
    return data


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the file `find_config_path` picks; $REDIS_URL overrides `redis.url`,
    $KEEPTRUSTS_POSTGRES_URL overrides `ledger.postgres_url` (validated the same way)."""
    p = find_config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), ["cannot read: not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # The problem text names the syntax error only (never the document's content).
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if isinstance(problem, str) and problem else ""
        raise ConfigError(str(p), [f"invalid YAML{where}{why}"]) from None
    data = _signing_from_environment(data)
    cfg = parse_config(data, str(p))
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        cfg = cfg.model_copy(update={"redis": cfg.redis.model_copy(update={"url": redis_url})})
    pg_url = os.environ.get("KEEPTRUSTS_POSTGRES_URL")
    if pg_url:
        raw = {**cfg.ledger.model_dump(), "postgres_url": pg_url}
        try:
            ledger = LedgerSettings.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(
                "KEEPTRUSTS_POSTGRES_URL", [_describe(e) for e in exc.errors()]
            ) from None
        cfg = cfg.model_copy(update={"ledger": ledger})
    return cfg
