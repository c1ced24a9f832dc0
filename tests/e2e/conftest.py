"""The end-to-end modules share one control plane (`cp`: PostgreSQL metadata, two workers) and one instance pair
(`pair`) for the whole session, so the slow deploy happens once. Both live in tests/conftest.py, since the browser
tests in tests/ui use them too (one definition, so one control plane and one pair per session)."""
from __future__ import annotations
