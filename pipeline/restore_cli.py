"""The ``cassandra-restore`` command: exit 0 on success, 2 on bad input, 1 on a failed run."""

from __future__ import annotations

import logging
import os
import re
import sys

logging.getLogger().addHandler(logging.NullHandler())

from pipeline.cli import EXIT_FAILED, EXIT_USAGE, exit_now, one_line  # noqa: E402
from pipeline.options import UsageError  # noqa: E402
from transforms.cassandra_write import RestoreInputError  # noqa: E402

# A file the decoder rejects is bad input, also when a runner re-raises it as another type.
_INPUT_ERROR = "RestoreInputError: "


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from pipeline.restore_launcher import run

    password = os.environ.get("CASSANDRA_PASSWORD")

    def scrub(text: str) -> str:
        return text.replace(password, "***") if password else text

    try:
        return run(argv)
    except UsageError as exc:
        print(f"cassandra-restore: error: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "cassandra-restore: interrupted; finished units are kept: rerun with --resume",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # a failure mid-run: finished units stay, --resume continues
        text = str(exc)
        if isinstance(exc, RestoreInputError) or _INPUT_ERROR in text:
            line = text.rsplit(_INPUT_ERROR, 1)[-1].strip().splitlines()[0]
            line = re.sub(r" \[while running '[^']*'\]$", "", line)[:500]
            print(f"cassandra-restore: error: {scrub(line)}", file=sys.stderr)
            code = EXIT_USAGE
        else:
            line = re.sub(r" \[while running '[^']*'\]$", "", one_line(exc))
            print(
                f"cassandra-restore: restore failed: {scrub(line)}\n"
                "cassandra-restore: finished units are kept; rerun with --resume to continue",
                file=sys.stderr,
            )
            code = EXIT_FAILED
        if os.environ.get("CASSANDRA_EXPORT_DEBUG"):
            raise
        return code


def console_main() -> None:
    """The ``cassandra-restore`` console entry point."""
    exit_now(main())


if __name__ == "__main__":
    console_main()
