"""Serve the OpenStack TEST DOUBLE (tests/openstack_double: the real APIs' wire protocol, state in memory) for this
scenario until SIGTERM: writes <dir>/clouds.yaml (cloud "pgaas-double", 0600) and <dir>/openstack_double.pid.

usage: python openstack_double.py DIR   (from the repository root, with it on PYTHONPATH)
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import yaml

from tests.openstack_double import CloudDouble, NullHosts


def main(out: Path) -> None:
    double = CloudDouble(hosts=NullHosts())
    double.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fd = os.open(out / "clouds.yaml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(double.clouds_yaml("pgaas-double"), fh)
    (out / "openstack_double.pid").write_text(str(os.getpid()))
    stop.wait()
    double.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
