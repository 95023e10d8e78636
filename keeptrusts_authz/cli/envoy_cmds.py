"""`keeptrusts-authz render-envoy`: write the Envoy bootstrap YAML for a keeptrusts config."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from keeptrusts_authz.config.loader import ConfigError, load_config
from keeptrusts_authz.envoy_config.render import render_envoy_yaml


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_render_envoy(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"keeptrusts-authz: {exc}", file=sys.stderr)
        return 2
    text = render_envoy_yaml(cfg)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        _write_atomically(Path(args.output), text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render-envoy",
        help="render the Envoy config (listener, ext_authz, Lua usage filter, access log)",
        description="Render the Envoy bootstrap YAML for the providers and gateway settings of "
        "a keeptrusts config. Output is deterministic; without --output it goes to stdout.",
    )
    p.add_argument("--config", help="keeptrusts.yaml (default: $KEEPTRUSTS_CONFIG)")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.set_defaults(func=cmd_render_envoy)
