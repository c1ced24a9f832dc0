"""Stands in for the get-pip.py that ansible-test downloads from ci-files.testing.ansible.com to bootstrap pip in
its sanity test virtualenvs (that host is out of reach here; the package index is not). It takes the same
arguments: pip from the interpreter's own ensurepip, then the pinned versions asked for, from the package index."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
