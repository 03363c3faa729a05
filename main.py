"""Dataflow Flex template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): the export CLI."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
