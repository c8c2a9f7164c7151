#!/usr/bin/env bash
# kvfix-gate.sh DIR [FAIL_ON]: the integrity gate the CI example runs on a restored backup.
# One `kvfix check` run writes both reports: kvfix-check.json (machine-readable, in the
# working directory) and the Markdown summary ($GITHUB_STEP_SUMMARY, or kvfix-check.md).
# Exit codes are kvfix's: 0 clean, 1 findings at or above FAIL_ON, 2 could not run.
set -euo pipefail
dir=${1:?usage: kvfix-gate.sh DIR [FAIL_ON]}
fail_on=${2:-error}
summary=${GITHUB_STEP_SUMMARY:-kvfix-check.md}
test -f "$dir/db/CURRENT" || { echo "::error::$dir has no db/CURRENT"; exit 2; }
code=0
KVFIX_NO_PROGRESS=1 kvfix check "$dir" --verify-checksums --format json --fail-on "$fail_on" \
    --summary-file "$summary" > kvfix-check.json || code=$?
case "$code" in
    0) echo "kvfix check: clean" ;;
    1) echo "::error::kvfix check found problems at or above $fail_on (see the job summary)" ;;
    *) echo "::error::kvfix check could not run (exit $code)" ;;
esac
exit "$code"
