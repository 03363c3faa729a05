"""Command line and config file parsing into export settings and Beam pipeline options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import (
    OPTION_SPECS,
    SPECS_BY_DEST,
    NoExitParser,
    UsageError,
    add_export_arguments,
)
from pipeline.runners import mentions_dask, names_layout, resolve_runner_alias

DEFAULT_RUNNER = "FnApiRunner"


@dataclass
class Settings:
    """Parsed export settings: values of every option, which were given, and Beam's args."""

    values: dict[str, Any]
    explicit: set[str]
    beam_args: list[str] = field(default_factory=list)
    # Whether the user named a runner or a worker layout (else the export picks one).
    layout_named: bool = True

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def export_parser() -> argparse.ArgumentParser:
    parser = NoExitParser(
        prog="cassandra-export",
        description=(
            "Export a Cassandra table with the WRITETIME and TTL of every cell, as an Apache "
            "Beam pipeline. Beam options (--runner, --direct_num_workers, ...) pass through."
        ),
        epilog=(
            "Credentials: CASSANDRA_USERNAME / CASSANDRA_PASSWORD or --credentials-file. "
            "Runner default: FnApiRunner (local). See docs/export.md for every option."
        ),
        allow_abbrev=False,
    )
    add_export_arguments(parser, with_defaults=False)
    return parser


def _beam_parser() -> argparse.ArgumentParser:
    parser = NoExitParser(add_help=False, allow_abbrev=False)
    seen: set[type] = set()

    def visit(cls: type) -> None:
        for sub in cls.__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            if sub.__module__.startswith("pipeline."):
                continue  # our own ExportOptions: already parsed
            try:
                sub._add_argparse_args(parser)  # type: ignore[attr-defined]
            except argparse.ArgumentError:
                pass  # an option two classes share
            visit(sub)

    visit(PipelineOptions)
    return parser


def _config_to_argv(path: str, specs_by_dest: dict[str, Any] = SPECS_BY_DEST) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise UsageError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"--config: {path} is not valid YAML{where}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise UsageError(f"--config: {path} must hold a mapping of option: value")
    argv: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str) or not key.replace("-", "_").replace("_", "").isalnum():
            raise UsageError(f"--config: {path} has a bad option name {key!r}")
        if key.replace("-", "_") in ("config", "password"):
            raise UsageError(f"--config: {path} may not set {key!r}")
        flag = "--" + key
        if value is None:
            continue
        if isinstance(value, bool):
            spec = specs_by_dest.get(key.replace("-", "_"))
            if spec is not None and spec.flag:
                argv.append(f"{flag}={'true' if value else 'false'}")
            elif value:
                argv.append(flag)
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if isinstance(value, dict):
            raise UsageError(f"--config: {path}: option {key!r} must be a single value")
        if isinstance(value, str) and value.startswith("~/"):
            value = os.path.expanduser(value)  # e.g. prism_location in run_configs/prism.yaml
        argv.append(f"{flag}={value}")
    return argv


def parse_settings(
    argv: Sequence[str],
    specs: Sequence[Any] = OPTION_SPECS,
    make_parser: Callable[[], argparse.ArgumentParser] = export_parser,
) -> Settings:
    """Parse argv (with an optional --config file underneath) into Settings; ``specs`` and
    ``make_parser`` are the command's option table and parser (export by default)."""
    argv = list(argv)
    if any(a == "--password" or a.startswith("--password=") for a in argv):
        raise UsageError(
            "passwords are not taken from the command line (they would show in process "
            "lists and shell history): set CASSANDRA_PASSWORD or use --credentials-file"
        )
    config_parser = NoExitParser(add_help=False, allow_abbrev=False)
    config_parser.add_argument("--config", dest="config")
    known, _ = config_parser.parse_known_args(argv)
    prefix = _config_to_argv(known.config, {s.dest: s for s in specs}) if known.config else []

    parser = make_parser()
    namespace, rest = parser.parse_known_args(prefix + argv)
    values = vars(namespace)
    explicit = {k for k, v in values.items() if v is not None}
    for spec in specs:
        if values.get(spec.dest) is None:
            values[spec.dest] = spec.default if not spec.flag else bool(spec.default)
    from_config = {a.split("=", 1)[0] for a in prefix}
    beam_args = _check_beam_args(rest, from_config, known.config, parser.prog)
    return Settings(values, explicit, beam_args, layout_named=names_layout(rest))


def _check_beam_args(
    rest: list[str],
    from_config: set[str] | None = None,
    config_path: str | None = None,
    prog: str = "cassandra-export",
) -> list[str]:
    if mentions_dask(rest):
        # Beam registers DaskOptions (--dask_client_address...) only once its runner module
        # is imported; import it only then (it imports dask: half a second).
        import apache_beam.runners.dask.dask_runner  # noqa: F401

    rest = resolve_runner_alias(rest)
    positional = [a for a in rest if not a.startswith("-")]
    beam_parser = _beam_parser()
    try:
        _, unknown = beam_parser.parse_known_args(rest)
    except UsageError as exc:
        raise UsageError(f"bad Beam pipeline option: {exc}") from None
    unknown_flags = [a.split("=", 1)[0] for a in unknown if a.startswith("-")]
    if unknown_flags and unknown_flags[0] in (from_config or set()):
        raise UsageError(
            f"--config {config_path}: unknown option {unknown_flags[0].lstrip('-')!r} "
            f"(see {prog} --help)"
        )
    if unknown_flags:
        raise UsageError(
            f"unknown option {unknown_flags[0]} (see {prog} --help for its own "
            "options; Beam pipeline options are passed through by their Beam names)"
        )
    if positional and unknown:
        raise UsageError(f"unexpected argument {positional[0]!r}")
    if not any(a == "--runner" or a.startswith("--runner=") for a in rest):
        rest = [f"--runner={DEFAULT_RUNNER}"] + rest
    return rest


def credentials(settings: Settings) -> tuple[str | None, str | None]:
    """User name and password from the credentials file, then the environment."""
    username = settings.get("username") or os.environ.get("CASSANDRA_USERNAME") or None
    password = os.environ.get("CASSANDRA_PASSWORD") or None
    path = settings.get("credentials_file")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageError(f"--credentials-file: cannot read {path}: {exc.strerror}") from None
        found: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                key, sep, value = line.partition(":")
            if not sep:
                raise UsageError(
                    f"--credentials-file: {path} must hold 'username=...' and 'password=...' lines"
                )
            found[key.strip().lower()] = value.strip()
        username = found.get("username", username)
        password = found.get("password", password)
    if password and not username:
        raise UsageError(
            "a password is set but no user name: set CASSANDRA_USERNAME, --username, or "
            "'username=' in the credentials file"
        )
    return username, password
