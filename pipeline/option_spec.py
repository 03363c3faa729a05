"""What one command option is (``OptionSpec``) and what its value may be: the parsers of
option values and the words that name each kind in errors, help and Flex metadata.

Shared by the export's and the restore's option tables (``pipeline.options``,
``pipeline.restore_options``). A parser raises ``ValueError`` on a bad value; the argument
parser turns that into one ``UsageError`` line naming the option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, ports)."""
    value = int(text)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0, where 0 means none or automatic."""
    value = int(text)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (rates and intervals, 0 for none)."""
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts)."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a finite number > 0")
    return value


def boolean(text: str) -> bool:
    """true/false, yes/no, 1/0, on/off, in any case: config files and Flex templates
    spell switches each their own way."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError("must be true or false")


def delimiter(text: str) -> str:
    """One character that can separate CSV fields; ``\\t`` or ``tab`` for a tab."""
    value = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(value) != 1 or value in '\r\n"':
        raise ValueError("must be one character other than a quote or a newline")
    return value


TYPE_NAMES: dict[Callable[[str], Any], str] = {
    positive_int: "a positive integer",
    non_negative_int: "an integer >= 0",
    non_negative_float: "a number >= 0",
    positive_float: "a number > 0",
    boolean: "true or false",
    delimiter: "one character",
    str: "text",
}


@dataclass(frozen=True)
class OptionSpec:
    """One option of a command (export or restore), in every spelling it has."""

    name: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    choices: Sequence[str] | None = None
    flag: bool = False  # boolean switch: present means true
    output_affecting: bool = False
    group: str = "export"
    metavar: str | None = None
    optional_value: bool = False  # e.g. --resume [OUT]
    regex: str | None = None  # validation regex for Flex template metadata
    aliases: tuple[str, ...] = ()  # older names still accepted (--restore-manifest)

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flags(self) -> list[str]:
        """Every spelling argparse accepts: the name first, dashed and underscored, then each
        alias the same two ways."""
        found: list[str] = []
        for name in (self.name, *self.aliases):
            for flag in ("--" + name, "--" + name.replace("-", "_")):
                if flag not in found:
                    found.append(flag)
        return found


def describe_type(spec: OptionSpec) -> str:
    """What ``spec``'s value may be, for error messages and help ('a positive integer')."""
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    return TYPE_NAMES.get(spec.type, "a value")
