#!/bin/sh
# Exit 0 when every command given as an argument is on PATH; print the missing ones otherwise.
missing=''
for c in "$@"; do
  command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
if [ -n "$missing" ]; then
  echo "missing:$missing"
  exit 1
fi
echo ok
