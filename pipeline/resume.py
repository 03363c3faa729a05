"""Resume: which options may change when an export is continued, and the settings a
resumed export runs with (the recorded ones, plus what may change)."""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings
from pipeline.export_record import NOT_RECORDED
from pipeline.options import OUTPUT_AFFECTING, SPECS_BY_DEST, UsageError


def check_resume_options(settings: Settings, stored: dict[str, Any]) -> None:
    """Refuse an option given again with another value than the export recorded, when it
    changes the output (it would mix two shapes of rows in one export)."""
    for key in sorted(settings.explicit):
        if key not in OUTPUT_AFFECTING:
            continue
        given = settings.values.get(key)
        previous = stored.get(key)
        if key == "table" and isinstance(given, str) and "." in given:
            given = given.split(".", 1)[1]
        if _normalized(given) != _normalized(previous):
            flag = SPECS_BY_DEST[key].flags[0]
            raise UsageError(
                f"--resume: {flag} is {given!r} but the export being resumed used "
                f"{previous!r}; an option that changes the output cannot change on resume "
                "(drop it, or start a new export with --overwrite or another --output)"
            )


def _normalized(value: Any) -> Any:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return ",".join(parts)
    return value


def resumed_settings(settings: Settings, stored: dict[str, Any]) -> Settings:
    """The settings of a resumed export: output-affecting options from the manifest; the
    others as given again, else as recorded, so ``--resume OUT`` alone continues it."""
    check_resume_options(settings, stored)
    # Output-affecting options come from the manifest; the rest may change (runner, hosts...).
    values = dict(settings.values)
    for key in OUTPUT_AFFECTING:
        if key in stored:
            values[key] = stored[key]
    # Everything else not given again (hosts, port, TLS files, consistency, batch size...)
    # is taken from the manifest too, so `--resume OUT` alone continues the same export.
    for key, value in stored.items():
        if key not in settings.explicit and key in values and key not in NOT_RECORDED:
            values[key] = value
    return Settings(values=values, explicit=settings.explicit, beam_args=settings.beam_args)
