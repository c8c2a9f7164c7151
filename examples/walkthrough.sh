#!/usr/bin/env bash
# A development-build data directory (legacy layout) moved to >= 2.10.1 and rolled back,
# on a scratch copy of the bundled example data. Needs only kvfix on PATH; no server.
# Every step states the exit code it must end with; the script fails on any other.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/data/legacy-basic" "$work/kvrocks"

# expect CODE COMMAND...: run it, show its exit code, stop unless it is CODE.
expect() {
    local want=$1 got=0
    shift
    printf '\n$ %s\n' "$*"
    "$@" || got=$?
    echo "(exit $got)"
    if [ "$got" -ne "$want" ]; then
        echo "walkthrough: expected exit $want" >&2
        exit 1
    fi
}

# 1. The development build's data, for a 2.10+ server: legacy records break XREAD (exit 1).
expect 1 kvfix scan "$work/kvrocks" --format plain
expect 0 kvfix migrate --list "$work/kvrocks"
expect 0 kvfix migrate "$work/kvrocks" --dry-run --format plain
expect 0 kvfix migrate "$work/kvrocks" --yes --backup-dir "$work/backup" --format plain
expect 0 kvfix scan "$work/kvrocks" --format plain --fail-on error
expect 0 kvfix check "$work/kvrocks" --format plain --fail-on error
expect 0 kvfix backups "$work/kvrocks" --in "$work/backup" --format plain
# 2. Rolling back to a 2.9 release: prefixed records crash it, so write them back in the legacy layout.
expect 0 kvfix migrate "$work/kvrocks" --to legacy --yes --no-backup --format plain
expect 0 kvfix scan "$work/kvrocks" --target 2.9 --format plain
expect 0 kvfix check "$work/kvrocks" --target 2.9 --format plain --fail-on error
