"""Framework-free job plumbing: the types the worker, the runner and the job handlers share (types.py), variables as
data for Ansible (spec.py), the ansible-runner wrapper (runner.py) and the worker loop (worker.py).
Nothing here imports Flask; the job handlers (webapp/services/handlers) are handed in by the caller, as one registry."""
