"""Migrations under a lock: several processes that upgrade one empty metadata database at the same moment
(PostgreSQL: an advisory lock; SQLite: flock on a file beside the database) all succeed, the schema ends at the
newest revision, and each migration ran once."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from webapp.store import Store, alembic_config, normalize_url

REPO = Path(__file__).resolve().parent.parent.parent

# Everything is imported before the start signal, so that the upgrades begin within milliseconds of each other.
UPGRADE = textwrap.dedent("""
    import logging, os, sys, time
    from alembic import command  # noqa: F401
    from webapp.store import Store
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store = Store(sys.argv[1])
    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.002)
    store.upgrade()
""")


def scripts(url: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(normalize_url(url)))


def migrations_run(log: str) -> list[str]:
    """The revisions Alembic says it upgraded to, in a log at INFO level."""
    return re.findall(r"Running upgrade \S* ?-> (\S+),", log)


def test_processes_upgrading_one_empty_database_at_once_migrate_it_once(database_url, tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADE, database_url, str(go)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        outs.append(out)
        assert p.returncode == 0, out[-3000:]
    script = scripts(database_url)
    assert Counter(r for out in outs for r in migrations_run(out)) == Counter(
        r.revision for r in script.walk_revisions())
    store = Store(database_url)
    with store.session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            script.get_current_head()]
        assert s.execute(text("SELECT count(*) FROM periodic_claims")).scalar() == 0  # the schema is there
    store.dispose()
