"""Packaging for cassandra-export; also usable as Beam's --setup_file for remote workers."""

from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
REQUIREMENTS = [
    line.strip()
    for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="cassandra-export",
    version="0.1.0",
    description="Export Cassandra tables with WRITETIME() and TTL of every cell, as a Beam pipeline",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"]),
    install_requires=REQUIREMENTS,
    # The CSV writer's compiled line builder: optional, a build that fails (no C compiler)
    # leaves the NumPy path, which writes the same bytes.
    ext_modules=[
        Extension(
            "transforms.formats._lines",
            ["transforms/formats/_lines.c"],
            depends=["transforms/formats/_number_texts.h"],
            optional=True,
        )
    ],
    entry_points={
        "console_scripts": [
            "cassandra-export = pipeline.cli:console_main",
            "cassandra-restore = pipeline.restore_cli:console_main",
        ]
    },
    license="Apache-2.0",
)
