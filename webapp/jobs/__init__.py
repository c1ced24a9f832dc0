"""Framework-free job plumbing: ansible-runner wrapper (runner.py) and the worker loop (worker.py).
Nothing here imports Flask; domain handlers are handed in by the caller."""
