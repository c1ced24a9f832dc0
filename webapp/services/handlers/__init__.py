"""Job handlers: what the worker does for each job kind, one module per family, one registry.

base.py holds the public base class (JobHandler) and what the families share; lifecycle.py creates, deletes and
starts instances; settings.py changes settings and sizes and restarts; failover.py switches over, fails over and
rebuilds; certificates.py renews certificates; dumps.py dumps, deletes and restores tenant databases. registry.py
builds the one kind -> handler mapping the worker is given (webapp/extensions.py). Handlers sit above the domain
services (they call them; no service imports a handler) and below nothing but the worker's caller.
"""
