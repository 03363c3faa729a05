"""Bad input and hostile input (docs/export.md, errors and exit codes): one clear line, exit
code 2, nothing written.

Every case runs ``cassandra-export`` as a child process, as a user would. Each must exit 2
with stderr being exactly one line that starts ``cassandra-export: error:`` and names what
is wrong, with no traceback anywhere, and must leave no ``_SUCCESS``; a new export leaves
its output directory absent or empty, and a refused resume leaves the directory as it was.
Injection attempts through table and column names must be refused as unknown names, with
the sentinel table still there afterwards.

The cases run two at a time in one module fixture (each child spends ~1 s importing
Beam); the positive cases (quoted identifiers, ``--table ks.t``, YAML config) run in-process.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import CliResult

# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ks(request: pytest.FixtureRequest, session: Any) -> str:
    keyspace = helpers.fresh_keyspace(request, session, "cli")
    for statement in (
        "CREATE TABLE {ks}.t (k int, c int, v text, w int, PRIMARY KEY (k, c))",
        "CREATE TABLE {ks}.counts (k int PRIMARY KEY, n counter)",
        "CREATE TABLE {ks}.clash (k int PRIMARY KEY, v text, v_writetime text)",
        "CREATE TABLE {ks}.clash2 (k int PRIMARY KEY, a int, a_y int)",
        "CREATE TABLE {ks}.sentinel (k int PRIMARY KEY)",
        "CREATE TABLE {ks}.x (k int PRIMARY KEY)",
        "CREATE TABLE {ks}.t2 (k int PRIMARY KEY, v text)",
        'CREATE TABLE {ks}."MixedCase" ("Order" int, "select" text, "from" int, '
        '"Value" text, PRIMARY KEY ("Order", "select"))',
    ):
        session.execute(statement.format(ks=keyspace))
    for k in range(5):
        session.execute(
            f"INSERT INTO {keyspace}.t (k, c, v, w) VALUES ({k}, 0, 'v{k}', {k}) "
            f"USING TIMESTAMP {1_700_000_000_000_000 + k}"
        )
    session.execute(f"INSERT INTO {keyspace}.sentinel (k) VALUES (1)")
    session.execute(f"INSERT INTO {keyspace}.x (k) VALUES (1)")
    return keyspace


# --- the cases -----------------------------------------------------------------------------------


@dataclass
class Ctx:
    hosts: str
    ks: str
    tmp: Path
    finished: Path  # a finished export of ks.t, to copy for resume cases

    @property
    def out(self) -> str:
        return str(self.tmp / "out")

    def args(self, *extra: str, table: str = "t") -> list[str]:
        """A valid export of ``table`` plus ``extra``."""
        return [
            "--hosts",
            self.hosts,
            "--table",
            f"{self.ks}.{table}",
            "--output",
            self.out,
            *extra,
        ]

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def unfinished_copy(self, name: str) -> str:
        """A copy of the finished export, elsewhere than ``out``, without its _SUCCESS."""
        copy = self.tmp / name
        shutil.copytree(self.finished, copy)
        (copy / "_SUCCESS").unlink()
        return str(copy)

    def interrupted_export(self) -> str:
        """A copy of the finished export with its last unit uncommitted and no _SUCCESS."""
        shutil.copytree(self.finished, self.out)
        (Path(self.out) / "_SUCCESS").unlink()
        markers = sorted((Path(self.out) / "_manifest" / "ranges").glob("*.json"))
        markers[-1].unlink()
        return self.out


@dataclass
class Case:
    id: str
    argv: Callable[[Ctx], list[str]]
    message: str  # a fragment the error line must hold
    setup: Callable[[Ctx], Any] | None = None
    new_export: bool = True  # output must end absent or empty
    env: dict[str, str] = field(default_factory=dict)
    secret: str | None = None  # must not appear in any output


def _edit_manifest(ctx: Ctx, change: Callable[[dict[str, Any]], None]) -> None:
    ctx.interrupted_export()
    path = Path(ctx.out) / "_manifest" / "export.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _break_json(ctx: Ctx, relative: str) -> None:
    ctx.interrupted_export()
    path = Path(ctx.out) / relative
    if relative.endswith("*"):
        path = sorted(path.parent.glob("*.json"))[0]
    path.write_text(path.read_text()[:-20])


def _config(ctx: Ctx, text: str) -> list[str]:
    return ["--config", ctx.write("config.yaml", text), "--output", ctx.out]


CASES: list[Case] = [
    # --- options and their values
    Case(
        "unknown-option", lambda c: c.args("--bogus-option", "1"), "unknown option --bogus-option"
    ),
    Case("abbreviated-option", lambda c: c.args("--fetch", "10"), "unknown option --fetch"),
    Case(
        "fetch-size-abc",
        lambda c: c.args("--fetch-size", "abc"),
        "--fetch-size: 'abc' is not an integer >= 0",
    ),
    Case(
        "fetch-size-negative",
        lambda c: c.args("--fetch-size", "-5"),
        "--fetch-size: '-5' is not an integer >= 0",
    ),
    Case(
        "splits-negative",
        lambda c: c.args("--splits", "-1"),
        "--splits: '-1' is not an integer >= 0",
    ),
    Case(
        "read-timeout-nan",
        lambda c: c.args("--read-timeout", "nan"),
        "--read-timeout: 'nan' is not a number > 0",
    ),
    Case(
        "port-out-of-range",
        lambda c: [
            "--hosts",
            "127.0.0.1",
            "--port",
            "70000",
            "--table",
            f"{c.ks}.t",
            "--output",
            c.out,
        ],
        "--port",
    ),
    Case("bad-format", lambda c: c.args("--format", "xml"), "invalid choice: 'xml'"),
    Case("bad-consistency", lambda c: c.args("--consistency", "MOST"), "invalid choice: 'MOST'"),
    Case(
        "bad-protocol-version",
        lambda c: c.args("--protocol-version", "3"),
        "invalid choice: '3'",
    ),
    Case("bad-compression", lambda c: c.args("--compression", "lzma"), "invalid choice: 'lzma'"),
    Case(
        "delimiter-two-chars",
        lambda c: c.args("--delimiter", "ab"),
        "--delimiter: 'ab' is not one character",
    ),
    Case("delimiter-quote", lambda c: c.args("--delimiter", '"'), "--delimiter"),
    Case(
        "null-value-delimiter",
        lambda c: c.args("--null-value", ","),
        "--null-value: ',' holds the delimiter, a quote, CR or LF",
    ),
    Case(
        "null-value-newline",
        lambda c: c.args("--null-value", "a\nb"),
        "--null-value: 'a\\nb' holds the delimiter, a quote, CR or LF",
    ),
    Case(
        "null-value-quote",
        lambda c: c.args("--format", "csv", "--delimiter", "tab", "--null-value", '"N"'),
        "--null-value: '\"N\"' holds the delimiter",
    ),
    Case("bool-flag-value", lambda c: c.args("--ssl=maybe"), "--ssl: 'maybe' is not true or false"),
    Case("stray-argument", lambda c: c.args("extra"), "unexpected argument 'extra'"),
    Case(
        "bad-beam-option", lambda c: c.args("--direct_num_workers", "abc"), "--direct_num_workers"
    ),
    Case(
        "avro-with-compression",
        lambda c: c.args("--format", "avro", "--compression", "gzip"),
        "--compression applies to text formats",
    ),
    Case(
        "empty-writetime-suffix",
        lambda c: c.args("--writetime-suffix", ""),
        "--writetime-suffix must not be empty",
    ),
    # --- what to export
    Case(
        "missing-table",
        lambda c: ["--hosts", c.hosts, "--keyspace", c.ks, "--output", c.out],
        "--table is required",
    ),
    Case(
        "missing-keyspace",
        lambda c: ["--hosts", c.hosts, "--table", "t", "--output", c.out],
        "--keyspace is required",
    ),
    Case(
        "missing-output",
        lambda c: ["--hosts", c.hosts, "--table", f"{c.ks}.t"],
        "--output OUT is required",
    ),
    Case("keyspace-mismatch", lambda c: c.args("--keyspace", "other"), "names keyspace"),
    Case(
        "unknown-keyspace",
        lambda c: ["--hosts", c.hosts, "--table", "no_such_ks.t", "--output", c.out],
        "keyspace 'no_such_ks' does not exist",
    ),
    Case(
        "unknown-table",
        lambda c: c.args(table="no_such_table"),
        "table 'no_such_table' does not exist",
    ),
    Case("unknown-column", lambda c: c.args("--columns", "v,nope"), "--columns: table"),
    Case(
        "unknown-writetime-column",
        lambda c: c.args("--writetime-columns", "nope"),
        "--writetime-columns: table",
    ),
    Case("unknown-ttl-column", lambda c: c.args("--ttl-columns", "v,nope"), "--ttl-columns: table"),
    Case(
        "writetime-column-not-exported",
        lambda c: c.args("--columns", "v", "--writetime-columns", "w"),
        "not among the exported --columns",
    ),
    Case(
        "counter-writetime",
        lambda c: c.args("--writetime-columns", "n", table="counts"),
        "it is a counter",
    ),
    Case("counter-ttl", lambda c: c.args("--ttl-columns", "n", table="counts"), "it is a counter"),
    Case(
        "partition-key-ttl",
        lambda c: c.args("--ttl-columns", "k"),
        "column 'k' cannot have a TTL: it is a partition key column",
    ),
    Case(
        "clustering-key-writetime",
        lambda c: c.args("--writetime-columns", "c"),
        "column 'c' cannot have a writetime: it is a clustering column",
    ),
    Case(
        "suffix-clash",
        lambda c: c.args(table="clash"),
        "output column 'v_writetime' (writetime of 'v') would clash with the table's column of "
        "that name; choose another suffix with --writetime-suffix",
    ),
    Case(  # a_y + _x and a + _y_x: two output columns, one name, none the table's
        "suffix-clash-between-outputs",
        lambda c: c.args(
            *("--ttl-columns", "*", "--writetime-suffix", "_x", "--ttl-suffix", "_y_x"),
            table="clash2",
        ),
        "output column 'a_y_x' (ttl of 'a') would clash with the writetime column of 'a_y'; "
        "choose another suffix with --ttl-suffix",
    ),
    # --- hostile names: refused as unknown, nothing executed
    Case(
        "inject-table",
        lambda c: [
            "--hosts",
            c.hosts,
            "--keyspace",
            c.ks,
            "--table",
            "t; DROP TABLE sentinel",
            "--output",
            c.out,
        ],
        "does not exist",
    ),
    Case(
        "inject-qualified-table",
        lambda c: [
            "--hosts",
            c.hosts,
            "--table",
            f"{c.ks}.t; DROP TABLE {c.ks}.sentinel",
            "--output",
            c.out,
        ],
        "does not exist",
    ),
    Case(
        "inject-quoted-table",
        lambda c: [
            "--hosts",
            c.hosts,
            "--keyspace",
            c.ks,
            "--table",
            '"t"; DROP TABLE sentinel; --"',
            "--output",
            c.out,
        ],
        "does not exist",
    ),
    Case(
        "inject-keyspace",
        lambda c: [
            "--hosts",
            c.hosts,
            "--keyspace",
            f"{c.ks}; DROP KEYSPACE {c.ks}",
            "--table",
            "t",
            "--output",
            c.out,
        ],
        "does not exist",
    ),
    Case(
        "inject-columns",
        lambda c: c.args("--columns", "v) FROM x;--"),
        "has no column 'v) FROM x;--'",
    ),
    Case(
        "inject-writetime-columns",
        lambda c: c.args("--writetime-columns", "v), TTL(v"),
        "has no column 'v)'",  # the list splits at the comma; the first part is unknown
    ),
    Case(
        "inject-quoted-column", lambda c: c.args("--columns", '"v"" FROM x; --"'), "has no column"
    ),
    # --- connection
    Case(
        "unreachable-host",
        lambda c: ["--hosts", "127.0.0.1:1", "--table", f"{c.ks}.t", "--output", c.out],
        "cannot connect to Cassandra at 127.0.0.1:1",
    ),
    Case(
        "read-consistency-any",
        lambda c: c.args("--consistency", "ANY"),
        "--consistency: invalid choice: 'ANY' (choose from 'ONE', 'TWO', 'THREE', 'QUORUM', "
        "'ALL', 'LOCAL_QUORUM', 'EACH_QUORUM', 'LOCAL_ONE')",
    ),
    Case(
        "unknown-local-dc",
        lambda c: c.args("--local-dc", "nosuchdc"),
        ": no node of datacenter 'nosuchdc' (--local-dc) can be used (check the name: "
        "nodetool status lists the datacenters)",
    ),
    Case(
        "bad-hosts-port",
        lambda c: ["--hosts", "db1:notaport", "--table", f"{c.ks}.t", "--output", c.out],
        "--hosts: 'db1:notaport' is not host[:port]",
    ),
    Case(
        "empty-hosts",
        lambda c: ["--hosts", ",", "--table", f"{c.ks}.t", "--output", c.out],
        "--hosts: give at least one contact point",
    ),
    Case(
        "password-argv",
        lambda c: c.args("--password", "s3cr3t-argv"),
        "passwords are not taken from the command line",
        secret="s3cr3t-argv",
    ),
    Case(
        "password-argv-equals",
        lambda c: c.args("--password=s3cr3t-eq"),
        "passwords are not taken from the command line",
        secret="s3cr3t-eq",
    ),
    Case(
        "password-without-user",
        lambda c: c.args(),
        "a password is set but no user name",
        env={"CASSANDRA_PASSWORD": "s3cr3t-env"},
        secret="s3cr3t-env",
    ),
    Case(
        "credentials-file-missing",
        lambda c: c.args("--credentials-file", str(c.tmp / "nope")),
        "--credentials-file: cannot read",
    ),
    Case(
        "credentials-file-malformed",
        lambda c: c.args("--credentials-file", c.write("creds", "just-a-secret-line\n")),
        "must hold 'username=...'",
        secret="just-a-secret-line",
    ),
    Case(
        "ssl-ca-file-missing",
        lambda c: c.args("--ssl-ca-file", str(c.tmp / "ca.pem")),
        "--ssl-ca-file: cannot read",
    ),
    Case(
        "ssl-ca-file-garbage",
        lambda c: c.args("--ssl-ca-file", c.write("ca.pem", "not a certificate\n")),
        "cannot connect",
    ),
    Case(
        "ssl-cert-without-key",
        lambda c: c.args("--ssl-cert-file", c.write("cert.pem", "x\n")),
        "--ssl-cert-file needs --ssl-key-file",
    ),
    # --- output directory
    Case(
        "output-not-empty",
        lambda c: c.args(),
        "is not empty",
        setup=lambda c: (Path(c.out).mkdir(), Path(c.out, "keep.txt").write_text("mine")),
        new_export=False,
    ),
    Case(
        "output-holds-export",
        lambda c: c.args(),
        "continue it with --resume",
        setup=lambda c: c.interrupted_export(),
        new_export=False,
    ),
    Case(
        "output-is-file",
        lambda c: c.args(),
        "is a file, not a directory",
        setup=lambda c: Path(c.out).write_text("a file"),
        new_export=False,
    ),
    Case(
        "output-under-proc",
        lambda c: [
            "--hosts",
            c.hosts,
            "--table",
            f"{c.ks}.t",
            "--output",
            "/proc/1/cassandra-export-out",
        ],
        "/proc/1/cassandra-export-out",
    ),
    Case(
        "output-parent-is-file",
        lambda c: [
            "--hosts",
            c.hosts,
            "--table",
            f"{c.ks}.t",
            "--output",
            c.write("plain.txt", "x") + "/out",
        ],
        "plain.txt",
    ),
    # --- config files
    Case(
        "config-missing",
        lambda c: ["--config", str(c.tmp / "none.yaml"), "--output", c.out],
        "--config: cannot read",
    ),
    Case(
        "config-malformed",
        lambda c: _config(c, "table: [unclosed\nhosts: x\n"),
        "is not valid YAML",
    ),
    Case(
        "config-list",
        lambda c: _config(c, "- table\n- t\n"),
        "must hold a mapping of option: value",
    ),
    Case(
        "config-unknown-key",
        lambda c: _config(c, f"table: {c.ks}.t\nhosts: {c.hosts}\nno_such_option: 3\n"),
        "no_such_option",
    ),
    Case(
        "config-password",
        lambda c: _config(c, f"table: {c.ks}.t\npassword: s3cr3t-yaml\n"),
        "may not set 'password'",
        secret="s3cr3t-yaml",
    ),
    Case(
        "config-nested-value",
        lambda c: _config(c, f"table: {c.ks}.t\nformat: {{a: 1}}\n"),
        "must be a single value",
    ),
    Case(
        "config-bad-value",
        lambda c: _config(c, f"table: {c.ks}.t\nhosts: {c.hosts}\nfetch_size: lots\n"),
        "--fetch-size: 'lots' is not an integer >= 0",
    ),
    # --- writetime filters
    Case(
        "writetime-after-text",
        lambda c: c.args("--writetime-after", "yesterday"),
        "--writetime-after: 'yesterday' is not a time",
    ),
    Case(
        "writetime-after-bad-date",
        lambda c: c.args("--writetime-after", "2024-02-30"),
        "--writetime-after: '2024-02-30' is not a valid date",
    ),
    Case(
        "after-later-than-before",
        lambda c: c.args("--writetime-after", "2024-06-01", "--writetime-before", "2024-01-01"),
        "--writetime-after is later than --writetime-before",
    ),
    Case(
        "filter-without-writetimes",
        lambda c: c.args("--writetime-after", "2024-01-01", "--writetime-columns", "none"),
        "needs writetime columns",
    ),
    Case(
        "ttl-filter-without-ttls",
        lambda c: c.args("--ttl-expiring-before", "2030-01-01"),
        "needs TTL columns",
    ),
    Case(
        "incremental-from-nothing",
        lambda c: c.args("--incremental-from", str(c.tmp / "prev")),
        "--incremental-from",
    ),
    Case(
        "incremental-from-unfinished",
        lambda c: c.args("--incremental-from", str(c.tmp / "prev")),
        "is not a finished export (no _SUCCESS)",
        setup=lambda c: c.unfinished_copy("prev"),
    ),
    Case(
        "incremental-from-inside-output",
        lambda c: c.args("--overwrite", "--incremental-from", f"{c.out}/prev"),
        "and --output name the same directory (or one holds the other)",
        setup=lambda c: shutil.copytree(c.finished, f"{c.out}/prev"),
        new_export=False,
    ),
    Case(
        "incremental-from-other-table",
        lambda c: c.args("--incremental-from", str(c.finished), table="t2"),
        "is an export of another table",
    ),
    # --- resume
    Case(
        "resume-without-manifest",
        lambda c: ["--hosts", c.hosts, "--resume", c.out],
        "holds no export manifest",
        setup=lambda c: Path(c.out).mkdir(),
        new_export=False,
    ),
    Case(
        "resume-missing-dir",
        lambda c: ["--hosts", c.hosts, "--resume", c.out],
        "holds no export manifest",
    ),
    Case(
        "resume-future-version",
        lambda c: ["--hosts", c.hosts, "--resume", c.out],
        "format version '9.0'",
        setup=lambda c: _edit_manifest(c, lambda m: m.update(version="9.0")),
        new_export=False,
    ),
    Case(
        "resume-broken-manifest",
        lambda c: ["--hosts", c.hosts, "--resume", c.out],
        "is not valid JSON",
        setup=lambda c: _break_json(c, "_manifest/export.json"),
        new_export=False,
    ),
    Case(
        "resume-broken-marker",
        lambda c: ["--hosts", c.hosts, "--resume", c.out],
        "is not valid JSON",
        setup=lambda c: _break_json(c, "_manifest/ranges/*"),
        new_export=False,
    ),
    Case(
        "resume-manifest-no-units",
        lambda c: ["--hosts", c.hosts, "--resume", c.out],
        "export.json",
        setup=lambda c: _edit_manifest(c, lambda m: m.pop("units")),
        new_export=False,
    ),
    Case(
        "resume-changed-writetime-columns",
        lambda c: ["--hosts", c.hosts, "--resume", c.out, "--writetime-columns", "v"],
        "--writetime-columns",
        setup=lambda c: c.interrupted_export(),
        new_export=False,
    ),
    Case(
        "resume-changed-format",
        lambda c: ["--hosts", c.hosts, "--resume", c.out, "--format", "avro"],
        "--format",
        setup=lambda c: c.interrupted_export(),
        new_export=False,
    ),
    Case(
        "resume-and-overwrite",
        lambda c: ["--hosts", c.hosts, "--resume", c.out, "--overwrite"],
        "--resume and --overwrite exclude each other",
        setup=lambda c: c.interrupted_export(),
        new_export=False,
    ),
    Case(
        "resume-other-output",
        lambda c: ["--hosts", c.hosts, "--resume", c.out, "--output", str(c.tmp / "elsewhere")],
        "name different directories",
        setup=lambda c: c.interrupted_export(),
        new_export=False,
    ),
]


@dataclass
class Outcome:
    result: CliResult
    before: list[str]
    after: list[str]
    out: str


def _run_case(case: Case, ctx: Ctx) -> Outcome:
    if case.setup is not None:
        case.setup(ctx)
    argv = case.argv(ctx)
    out = argv[argv.index("--output") + 1] if "--output" in argv else ctx.out
    if "--resume" in argv:
        out = argv[argv.index("--resume") + 1]
    before = helpers.tree(out)
    result = helpers.run_cli_subprocess(argv, env=case.env, timeout=120)
    return Outcome(result, before, helpers.tree(out), out)


@pytest.fixture(scope="module")
def finished(hosts: str, ks: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "out"
    helpers.export(hosts, f"{ks}.t", out, "--splits", "4")
    return out


@pytest.fixture(scope="module")
def outcomes(
    hosts: str, ks: str, finished: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    contexts = {c.id: Ctx(hosts, ks, tmp_path_factory.mktemp(c.id), finished) for c in CASES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.id: pool.submit(_run_case, c, contexts[c.id]) for c in CASES}
        return {case_id: future.result() for case_id, future in futures.items()}


def test_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    result = outcome.result
    assert result.code == 2, result.describe()
    assert "Traceback" not in result.stdout + result.stderr, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.describe()
    assert lines[0].startswith("cassandra-export: error: "), result.describe()
    assert case.message in lines[0], result.describe()
    if case.secret:
        assert case.secret not in result.stdout + result.stderr
    assert "_SUCCESS" not in outcome.after
    if case.new_export:
        assert outcome.after == [], outcome.after
    else:
        assert outcome.after == outcome.before  # a refused run changes nothing


def test_injection_executed_nothing(outcomes: dict[str, Outcome], session: Any, ks: str) -> None:
    assert all(outcomes[c.id].result.code == 2 for c in CASES if c.id.startswith("inject-"))
    assert [tuple(r) for r in session.execute(f"SELECT k FROM {ks}.sentinel")] == [(1,)]
    assert [tuple(r) for r in session.execute(f"SELECT k FROM {ks}.x")] == [(1,)]
    assert session.cluster.metadata.keyspaces[ks].tables.keys() >= {"t", "sentinel", "x"}


# --- positive cases: identifiers, table spellings, config files ----------------------------------


@pytest.fixture(scope="module")
def mixed_case(session: Any, ks: str) -> str:
    statement = (
        f'INSERT INTO {ks}."MixedCase" ("Order", "select", "from", "Value") '
        "VALUES (%s, %s, %s, %s) USING TIMESTAMP %s"
    )
    session.execute(statement, (1, "a", 10, "one", 1_700_000_000_000_001))
    session.execute(statement, (2, "b", 20, "two", 1_700_000_000_000_002))
    return ks


@pytest.mark.parametrize(
    "table_args",
    [
        ("--table", '{ks}."MixedCase"'),
        ("--keyspace", "{ks}", "--table", '"MixedCase"'),
        ("--keyspace", "{ks}", "--table", "mixedcase"),  # the one case-insensitive match
        ("--table", '"{ks}"."MixedCase"'),  # split at the dot outside the quotes
    ],
    ids=["qualified-quoted", "quoted", "folded", "both-quoted"],
)
def test_mixed_case_and_reserved_identifiers(
    hosts: str, mixed_case: str, tmp_path: Path, table_args: tuple[str, ...]
) -> None:
    ks = mixed_case
    argv = [a.format(ks=ks) for a in table_args]
    out = tmp_path / "out"
    result = helpers.run_cli(
        ["--hosts", hosts, *argv, "--output", str(out), "--format", "jsonl"]
        + ["--columns", 'from,"Value"', "--writetime-columns", "*", "--ttl-columns", "Value"]
        + ["--progress-interval", "0"]
    )
    assert result.code == 0, result.describe()
    rows = sorted(helpers.read_jsonl(out), key=lambda r: r["Order"])
    # Cassandra's column order: keys, then the rest by name ("Value" sorts before "from").
    assert rows == [
        {
            "Order": 1,
            "select": "a",
            "Value": "one",
            "from": 10,
            "Value_writetime": "2023-11-14T22:13:20.000001Z",
            "from_writetime": "2023-11-14T22:13:20.000001Z",
            "Value_ttl": None,
        },
        {
            "Order": 2,
            "select": "b",
            "Value": "two",
            "from": 20,
            "Value_writetime": "2023-11-14T22:13:20.000002Z",
            "from_writetime": "2023-11-14T22:13:20.000002Z",
            "Value_ttl": None,
        },
    ]


def test_table_spellings_export_the_same(hosts: str, ks: str, tmp_path: Path) -> None:
    outs = []
    for i, spelling in enumerate(
        (["--table", f"{ks}.t"], ["--keyspace", ks, "--table", "t"], ["--table", f'{ks}."t"'])
    ):
        out = tmp_path / f"out{i}"
        result = helpers.run_cli(
            ["--hosts", hosts, *spelling, "--output", str(out), "--format", "jsonl"]
            + ["--progress-interval", "0", "--splits", "0"]
        )
        assert result.code == 0, result.describe()
        outs.append(sorted(helpers.read_jsonl(out), key=lambda r: r["k"]))
    assert outs[0] == outs[1] == outs[2]
    assert [r["v"] for r in outs[0]] == ["v0", "v1", "v2", "v3", "v4"]
    assert outs[0][3]["w_writetime"] == "2023-11-14T22:13:20.000003Z"


def test_yaml_config_with_command_line_override(hosts: str, ks: str, tmp_path: Path) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(
        "# like run_configs/local.yaml\n"
        f"hosts: {hosts}\n"
        f"table: {ks}.t\n"
        "format: csv\n"  # overridden on the command line
        "writetime-format: micros\n"
        "ttl_columns: '*'\n"
        "columns: [v, w]\n"
        "splits: 3\n"
        "progress_interval: 0\n"
        "single_file: true\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = helpers.run_cli(["--config", str(config), "--format", "jsonl", "--output", str(out)])
    assert result.code == 0, result.describe()
    rows = sorted(helpers.read_jsonl(out), key=lambda r: r["k"])
    assert rows[2] == {
        "k": 2,
        "c": 0,
        "v": "v2",
        "w": 2,
        "v_writetime": 1_700_000_000_000_002,
        "w_writetime": 1_700_000_000_000_002,
        "v_ttl": None,
        "w_ttl": None,
    }
    assert len(rows) == 5
    assert (out / "export.jsonl").exists()  # single_file: true from the config
    manifest = json.loads((out / "_manifest" / "export.json").read_text())
    options = manifest["export_config"]["options"]
    assert options["format"] == "jsonl" and options["splits"] == 3
    assert options["writetime_format"] == "micros" and options["ttl_columns"] == "*"


def test_options_of_another_format_are_named_and_ignored(
    hosts: str, ks: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = helpers.export_argv(hosts, f"{ks}.t", out, "jsonl", 1)
    argv += ["--delimiter", ";", "--null-value", "NULL", "--parquet-codec", "zstd"]
    result = helpers.run_cli(argv)
    assert result.code == 0, result.describe()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: --delimiter applies to --format csv only; ignored with --format jsonl",
        "warning: --null-value applies to --format csv only; ignored with --format jsonl",
        "warning: --parquet-codec applies to --format parquet only; ignored with --format jsonl",
    ]
    rows = sorted(helpers.read_jsonl(out), key=lambda r: r["k"])
    assert [r["v"] for r in rows] == ["v0", "v1", "v2", "v3", "v4"]
    # Options of the chosen format give no warning.
    out2 = tmp_path / "out2"
    argv = helpers.export_argv(hosts, f"{ks}.t", out2, "csv", 1) + ["--delimiter", ";"]
    result = helpers.run_cli(argv)
    assert result.code == 0, result.describe()
    assert "warning: " not in result.stderr


def test_splits_zero_means_auto(hosts: str, ks: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    helpers.export(hosts, f"{ks}.t", out, "--splits", "0", "--format", "csv")
    assert len(helpers.read_rows(out)) == 5
    assert len(helpers.manifest_units(out)) >= 32
