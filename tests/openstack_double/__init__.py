"""A TEST DOUBLE of an OpenStack cloud, for pgaas's tests only. It is not OpenStack and not an emulator of one.

It speaks the HTTP APIs that openstacksdk and the openstack.cloud modules use, closely enough for pgaas's
`openstack` provider: Keystone v3 (password auth, tokens, a service catalog), Nova (servers with metadata, flavors,
keypairs, server groups with anti-affinity, volume attachments), Neutron (networks, subnets, ports, security groups
and rules, floating IPs), Cinder v3 (volumes: create, extend, delete, attachments) and Glance v2 (images, list only).
State lives in memory; nothing is persisted. Each created server is backed by a host from a pluggable backend: the
test lab's VM-like hosts (tests/lab) when they are available, otherwise no machine at all (an address only).

What it does not do: no real scheduler, quotas, policies/roles, regions beyond one, pagination links, Keystone
token scoping other than one project per user, Neutron routers, Glance uploads. See docs/operations.md.
"""
from tests.openstack_double.server import CloudDouble, NullHosts  # noqa: F401
