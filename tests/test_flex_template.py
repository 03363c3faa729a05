"""The Dataflow Flex template: metadata.json, Dockerfile, main.py and setup.py fit the pipeline.

No Docker engine and no Google Cloud here: these tests check everything the template
launcher relies on that can be checked locally, exactly, and without Cassandra.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dev import runners
from pipeline.config import parse_settings
from pipeline.options import OPTION_SPECS, SPECS_BY_DEST, ExportOptions, UsageError

REPO = Path(__file__).resolve().parent.parent
METADATA = json.loads((REPO / "metadata.json").read_text(encoding="utf-8"))
PARAMETERS = {p["name"]: p for p in METADATA["parameters"]}


def _sample(name: str, tmp_path: Path) -> tuple[str, Any]:
    """A valid value for option ``name`` as template text, and what the parser makes of it."""
    spec = SPECS_BY_DEST[name]
    if name == "config":
        path = tmp_path / "empty.yaml"
        path.write_text("# no options\n")
        return str(path), str(path)
    if name == "resume":
        return "gs://bucket/exports/t", "gs://bucket/exports/t"
    if spec.flag:
        return "true", True
    if spec.choices:
        return spec.choices[-1], spec.choices[-1]
    type_name = getattr(spec.type, "__name__", "")
    if type_name in ("positive_int", "non_negative_int"):
        return "7", 7
    if type_name in ("positive_float", "non_negative_float"):
        return "2.5", 2.5
    if type_name == "delimiter":
        return ";", ";"
    return "some-value", "some-value"


# A value each kind of regex must refuse, and the parser must refuse too.
_BAD_VALUES = {
    "positive_int": "0",
    "non_negative_int": "-1",
    "positive_float": "0",
    "non_negative_float": "-2.5",
}


def test_metadata_json_is_what_the_generator_writes_now() -> None:
    assert (REPO / "metadata.json").read_text(encoding="utf-8") == runners.render_metadata()
    assert runners.write_metadata(REPO / "metadata.json", check=True) is True


def test_parameters_are_exactly_the_options_by_underscore_name() -> None:
    names = [p["name"] for p in METADATA["parameters"]]
    assert names == [spec.dest for spec in OPTION_SPECS]
    assert len(set(names)) == len(names)
    for parameter in METADATA["parameters"]:
        assert set(parameter) <= {"name", "label", "helpText", "isOptional", "regexes"}
        assert parameter["label"] and parameter["helpText"].endswith(".")
        assert re.fullmatch(r"[a-z][a-z0-9_]*", parameter["name"])


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_parameter_is_an_option_the_pipeline_parses(name: str, tmp_path: Path) -> None:
    text, expected = _sample(name, tmp_path)
    settings = parse_settings([f"--{name}={text}"])
    assert settings.values[name] == expected
    assert name in settings.explicit
    assert settings.beam_args == ["--runner=FnApiRunner"]  # nothing leaked to Beam
    # The launcher passes parameters to Beam too: ExportOptions must know each one.
    assert ExportOptions([f"--{name}={text}"]).get_all_options()[name] == expected
    for regex in PARAMETERS[name].get("regexes", []):
        assert re.fullmatch(regex, text), (name, regex, text)
        default = SPECS_BY_DEST[name].default
        if default not in (None, "") and not SPECS_BY_DEST[name].flag:
            assert re.fullmatch(regex, str(default)), (name, regex, default)


@pytest.mark.parametrize(
    "name", sorted(n for n, p in PARAMETERS.items() if p.get("regexes") and n != "config")
)
def test_a_value_the_regex_refuses_the_parser_refuses(name: str) -> None:
    spec = SPECS_BY_DEST[name]
    bad = "maybe" if spec.flag or spec.choices else _BAD_VALUES[spec.type.__name__]
    for regex in PARAMETERS[name]["regexes"]:
        assert not re.fullmatch(regex, bad)
    with pytest.raises(UsageError):
        parse_settings([f"--{name}={bad}"])


def test_every_required_option_is_a_required_parameter(tmp_path: Path) -> None:
    required = {n for n, p in PARAMETERS.items() if not p["isOptional"]}
    assert required == set(runners.REQUIRED_OPTIONS) == {"table", "output"}
    from pipeline.job import prepare_export

    # The launcher refuses to start without each of them, before it connects anywhere.
    with pytest.raises(UsageError, match="--output"):
        prepare_export(parse_settings(["--table=ks.t"]))
    with pytest.raises(UsageError, match="--table"):
        prepare_export(parse_settings([f"--output={tmp_path / 'out'}"]))


def _dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def test_dockerfile_names_files_that_exist_and_the_pinned_sdk() -> None:
    text = _dockerfile()
    env = dict(re.findall(r'^ENV (FLEX_TEMPLATE_PYTHON_\w+)="?([^"\n]+)"?$', text, re.M))
    assert env["FLEX_TEMPLATE_PYTHON_PY_FILE"] == "${WORKDIR}/main.py"
    assert env["FLEX_TEMPLATE_PYTHON_SETUP_FILE"] == "${WORKDIR}/setup.py"
    copied = []
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        copied += line.split()[:-1]
    # MANIFEST.in puts requirements.txt into the sdist that the launcher stages for workers.
    assert {
        "requirements.txt",
        "setup.py",
        "MANIFEST.in",
        "main.py",
        "pipeline",
        "transforms",
    } <= set(copied)
    for path in copied:
        assert (REPO / path).exists(), path
    pinned = re.search(
        r"^apache-beam(?:\[[^]]*\])?==(\S+)$", (REPO / "requirements.txt").read_text(), re.M
    )
    assert pinned is not None
    assert f"FROM apache/beam_python3.11_sdk:{pinned.group(1)}" in text
    assert "python311-template-launcher-base" in text
    assert "pip install --no-cache-dir -r requirements.txt" in text


def test_main_py_is_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "main.py", "--table", "ks.t"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--output OUT is required" in proc.stderr


def test_dataflow_run_config_parses_into_beam_options() -> None:
    settings = parse_settings(["--config", str(REPO / "run_configs" / "dataflow.yaml")])
    args = dict(a[2:].split("=", 1) for a in settings.beam_args)
    assert args["runner"] == "DataflowRunner"
    assert args["setup_file"] == "./setup.py"
    assert {"project", "region", "temp_location", "sdk_container_image"} <= set(args)
    from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

    assert PipelineOptions(settings.beam_args).view_as(SetupOptions).setup_file == "./setup.py"


def test_parquet_run_config_parses() -> None:
    settings = parse_settings(["--config", str(REPO / "run_configs" / "local-parquet.yaml")])
    assert settings["format"] == "parquet" and settings["parquet_codec"] == "zstd"
    assert settings["parquet_row_group_rows"] == 100_000 and settings["single_file"] is True
    assert PARAMETERS["format"]["regexes"] == ["^(csv|jsonl|json|avro|parquet)$"]
    assert PARAMETERS["parquet_codec"]["regexes"] == ["^(zstd|snappy|gzip|none)$"]


def test_setup_py_builds_the_sdist_beam_stages_for_workers(tmp_path: Path) -> None:
    """What ``--setup_file`` does: Beam builds an sdist; each worker installs it."""
    name = subprocess.run(
        [sys.executable, "setup.py", "--name"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()[-1]
    assert name == "cassandra-export"
    from apache_beam.runners.portability.stager import Stager

    sdist = Stager._build_setup_package(str(REPO / "setup.py"), str(tmp_path))
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
        archive.extractall(tmp_path / "unpacked", filter="data")
    assert {"setup.py", "requirements.txt", "pipeline/cli.py", "transforms/sinks.py"} <= members
    # A worker builds from the unpacked sdist: setup.py must work there, with no repo around.
    root = next((tmp_path / "unpacked").iterdir())
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build", "--build-lib", str(tmp_path / "lib")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    built = {p.relative_to(tmp_path / "lib").as_posix() for p in (tmp_path / "lib").rglob("*.py")}
    sources = {
        p.relative_to(REPO).as_posix()
        for package in ("pipeline", "transforms")
        for p in (REPO / package).glob("*.py")
    }
    assert sources <= built
