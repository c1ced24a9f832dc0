#!/bin/sh
# Save IMAGE into DIR/<image id>.tar unless that archive exists; print "saved" or "present", then the path.
# usage: pgaas-save-image.sh IMAGE DIR
set -eu
id=$(podman image inspect --format '{{.Id}}' "$1")
mkdir -p -m 0700 "$2"
archive="$2/$id.tar"
if [ -f "$archive" ]; then
  echo present
else
  tmp="$archive.tmp.$$"
  podman save --format docker-archive --output "$tmp" "$1" >/dev/null
  mv "$tmp" "$archive"
  echo saved
fi
echo "$archive"
