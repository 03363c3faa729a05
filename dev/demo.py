"""The main job, end to end: a Cassandra (local unless CASSANDRA_CONTACT_POINTS is set), a demo
keyspace, and an export of it with writetimes and TTLs.

    python -m dev.demo [--rows 5000] [--output demo-output] [--format csv]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

logging.getLogger().addHandler(logging.NullHandler())  # Beam's import-time warnings
logging.getLogger("cassandra").setLevel(logging.ERROR)

REPO = Path(__file__).resolve().parent.parent
BASE_MICROS = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z


def ensure_cassandra(base_dir: Path) -> list[str]:
    """Contact points of CASSANDRA_CONTACT_POINTS, else of a local node (started if needed)."""
    external = os.environ.get("CASSANDRA_CONTACT_POINTS")
    if external:
        return [p.strip() for p in external.split(",") if p.strip()]
    print(f"starting a local Cassandra 5.0 node in {base_dir} (first run downloads it)...")
    code = subprocess.call(
        [sys.executable, "-m", "dev.cassandra_local", "start", "--dir", str(base_dir)], cwd=REPO
    )
    if code != 0:
        sys.exit(code)
    return ["127.0.0.1:9042"]


def load_demo(session: Any, rows: int) -> None:
    """Keyspace ``demo``: users (collections, statics, TTLs, known timestamps) and a counter
    table."""
    from cassandra.concurrent import execute_concurrent_with_args

    session.execute(
        "CREATE KEYSPACE IF NOT EXISTS demo WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute("CREATE TYPE IF NOT EXISTS demo.address (street text, city text, zip int)")
    session.execute(
        """CREATE TABLE IF NOT EXISTS demo.users (
            account_id int, user_id uuid, account_name text static,
            email text, age int, score double, tags set<text>, logins list<timestamp>,
            prefs map<text, text>, home frozen<address>, work address, avatar blob,
            PRIMARY KEY (account_id, user_id))"""
    )
    session.execute(
        "CREATE TABLE IF NOT EXISTS demo.page_views (page text PRIMARY KEY, views counter)"
    )
    have = session.execute("SELECT count(*) FROM demo.users").one()[0]
    if have >= rows:
        print(f"demo.users already holds {have:,} rows")
        return
    rng = random.Random(42)
    insert = session.prepare(
        "INSERT INTO demo.users (account_id, user_id, account_name, email, age, score, tags, "
        "logins, prefs, home, avatar) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "USING TIMESTAMP ? AND TTL ?"
    )
    update_work = session.prepare(
        "UPDATE demo.users USING TIMESTAMP ? SET work = ?, tags = tags + ? "
        "WHERE account_id = ? AND user_id = ?"
    )
    accounts = max(1, rows // 25)
    params = []
    updates = []
    for i in range(rows):
        account = i % accounts
        user = uuid.UUID(int=rng.getrandbits(128), version=4)
        ts = BASE_MICROS + i * 1_000_003
        ttl = 0 if i % 3 else 86_400 * 365
        params.append(
            (
                account,
                user,
                f"Account {account}",
                f"user{i}@example.com",
                18 + i % 60,
                round(rng.random() * 100, 3),
                {f"tag{i % 7}", "demo"},
                [BASE_MICROS // 1000 + i * 1000, BASE_MICROS // 1000 + i * 2000],
                {"theme": "dark" if i % 2 else "light", "lang": "en"},
                ('1 Main St, Apt "B"', "Zürich", 8000 + i % 100),
                bytes([i % 256, (i * 7) % 256]),
                ts,
                ttl,
            )
        )
        if i % 4 == 0:
            updates.append(
                (ts + 5_000_000, ("9 Side Rd", "Basel", 4000), {"updated"}, account, user)
            )
    execute_concurrent_with_args(session, insert, params, concurrency=64, raise_on_first_error=True)
    execute_concurrent_with_args(
        session, update_work, updates, concurrency=64, raise_on_first_error=True
    )
    session.execute(
        "INSERT INTO demo.users (account_id, account_name) VALUES (%s, %s) USING TIMESTAMP %s",
        (accounts + 1, "Static-only account", BASE_MICROS),
    )
    incr = session.prepare("UPDATE demo.page_views SET views = views + ? WHERE page = ?")
    execute_concurrent_with_args(
        session, incr, [(i + 1, f"/page/{i}") for i in range(50)], concurrency=16
    )
    print(f"loaded demo.users ({rows:,} rows + 1 static-only partition) and demo.page_views")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--output", default=str(REPO / "demo-output"))
    parser.add_argument("--format", default="csv", choices=("csv", "jsonl", "json", "avro"))
    parser.add_argument("--cassandra-dir", default=str(REPO / ".local" / "cassandra"))
    args = parser.parse_args(argv)

    started = time.monotonic()
    contact_points = ensure_cassandra(Path(args.cassandra_dir))
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    from transforms.cassandra_session import parse_host

    host, port = parse_host(contact_points[0], 9042)
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=60)
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    session = cluster.connect()
    try:
        load_demo(session, args.rows)
    finally:
        cluster.shutdown()

    from pipeline.cli import main as export_main

    hosts = ",".join(contact_points)
    users_out = str(Path(args.output) / "users")
    views_out = str(Path(args.output) / "page_views")
    print(f"\nexporting demo.users with writetimes and TTLs to {users_out} ...")
    code = export_main(
        [
            "--hosts",
            hosts,
            "--table",
            "demo.users",
            "--output",
            users_out,
            "--format",
            args.format,
            "--ttl-columns",
            "*",
            "--overwrite",
            "--consistency",
            "ONE",
            "--progress-interval",
            "2",
        ]
    )
    if code != 0:
        return code
    print(
        f"\nexporting the counter table demo.page_views (no writetime for counters) to {views_out}"
    )
    code = export_main(
        [
            "--hosts",
            hosts,
            "--table",
            "demo.page_views",
            "--output",
            views_out,
            "--format",
            "jsonl",
            "--overwrite",
            "--consistency",
            "ONE",
            "--progress-interval",
            "0",
        ]
    )
    if code != 0:
        return code
    print(f"\ndone in {time.monotonic() - started:.1f} s. Files:")
    for out in (users_out, views_out):
        data = sorted((Path(out) / "data").glob("part-*"))
        print(f"  {out}/data: {len(data)} files, e.g. {data[0].name if data else '-'}")
        print(f"  {out}/_manifest/stats.json (writetime/TTL statistics)")
    if not os.environ.get("CASSANDRA_CONTACT_POINTS"):
        print(
            "the local node keeps running for more exports "
            "(`cassandra-export --hosts 127.0.0.1 ...`); stop it with "
            "`.venv/bin/python -m dev.cassandra_local stop`"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
