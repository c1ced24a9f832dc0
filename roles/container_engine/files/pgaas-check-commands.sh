#!/bin/sh
# Exit 0 when every command given as an argument is on PATH (or, given as an absolute path, is an executable file);
# print the missing ones otherwise.
missing=''
for c in "$@"; do
  case "$c" in
    /*) [ -x "$c" ] || missing="$missing $c" ;;
    *) command -v "$c" >/dev/null 2>&1 || missing="$missing $c" ;;
  esac
done
if [ -n "$missing" ]; then
  echo "missing:$missing"
  exit 1
fi
echo ok
