"""Load `keeptrusts.yaml` into the model tree, turning pydantic errors into path-named messages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keeptrusts_authz.config.models import Config


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


def _describe(err: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = _path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    # Messages from the top-level validator already carry their own path.
    if not loc and msg and (msg.split(":")[0].replace("_", "").replace("[", "").isalnum()):
        return msg
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


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load from `path`, else $KEEPTRUSTS_CONFIG; $REDIS_URL overrides `redis.url`."""
    raw_path = path or os.environ.get("KEEPTRUSTS_CONFIG")
    if not raw_path:
        raise ConfigError("<config>", ["no config file given (--config or KEEPTRUSTS_CONFIG)"])
    p = Path(raw_path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(p), [f"invalid YAML{where}"]) from None
    cfg = parse_config(data, str(p))
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        cfg = cfg.model_copy(update={"redis": cfg.redis.model_copy(update={"url": redis_url})})
    return cfg
