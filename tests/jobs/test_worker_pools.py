"""Worker pools: the long dumps and restores of databases have worker threads of their own, so an hour-long dump
never holds up the instances' jobs (a failover rebuild, a settings change) queued behind it."""
from webapp.jobs.worker import Worker
from webapp.services import dumps
from webapp.store.models import Job

import pytest


def _worker(store, tmp_path, **kinds) -> Worker:
    return Worker(store, {}, jobs_dir=str(tmp_path / "jobs"), project_dir=str(tmp_path), inventory="", **kinds)


def test_instance_jobs_are_not_queued_behind_dumps(store, tmp_path):
    with store.session() as s:
        dump_ids = [s.merge(Job(kind="database_dump", created_by="t")) for _ in range(3)]
        s.flush()
        dump_ids = [j.id for j in dump_ids]
        other = s.merge(Job(kind="instance_settings", instance_name="i1", created_by="t"))
        s.flush()
        other_id = other.id
    instances = _worker(store, tmp_path, skip_kinds=dumps.KINDS)
    dumper = _worker(store, tmp_path, kinds=dumps.KINDS)
    assert instances.claim() == other_id  # the dumps came first, yet the instance's job goes now
    assert instances.claim() is None
    assert [dumper.claim() for _ in dump_ids] == dump_ids
    assert dumper.claim() is None
    with store.session() as s:
        s.add(Job(kind="instance_restart", instance_name="i2", created_by="t"))
    assert dumper.claim() is None  # not its kind
    assert _worker(store, tmp_path).claim() is not None  # a worker of every kind (no pools) takes anything
