#!/usr/bin/env bash
# A development-build data directory (legacy layout) moved to >= 2.10.1 and rolled back,
# on a scratch copy of the bundled example data. Needs only kvfix on PATH; no server.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/data/legacy-basic" "$work/kvrocks"

step() { printf '\n$ %s\n' "$*"; "$@"; echo "(exit $?)"; }

step kvfix scan "$work/kvrocks" --format plain
step kvfix migrate --list "$work/kvrocks"
step kvfix migrate "$work/kvrocks" --dry-run --format plain
step kvfix migrate "$work/kvrocks" --yes --backup-dir "$work/backup" --format plain
step kvfix scan "$work/kvrocks" --format plain --fail-on error
step kvfix check "$work/kvrocks" --format plain
# Rolling back to a 2.9 release: prefixed records crash it, so write them back in the legacy layout.
step kvfix migrate "$work/kvrocks" --to legacy --yes --no-backup --format plain
step kvfix scan "$work/kvrocks" --format plain --fail-on error
