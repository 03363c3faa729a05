"""Packaging for cassandra-export; also usable as Beam's --setup_file for remote workers."""

from pathlib import Path

from setuptools import find_packages, setup

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
    entry_points={
        "console_scripts": [
            "cassandra-export = pipeline.cli:console_main",
            "cassandra-restore = pipeline.restore_cli:console_main",
        ]
    },
    license="Apache-2.0",
)
