#!/bin/sh
# Lab host init: host keys once per host, the lab's public key for the login user, then sshd in the foreground.
set -eu
ssh-keygen -A >/dev/null
if [ -f /lab/authorized_keys ]; then
  install -d -m 0700 -o lab -g lab /home/lab/.ssh
  install -m 0600 -o lab -g lab /lab/authorized_keys /home/lab/.ssh/authorized_keys
fi
# /run is a tmpfs (new at every start, as after a VM's reboot): podman then sees a reboot and resets the state
# of containers that ran before.
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
