#!/usr/bin/env bash
# Catches temporary folders that tests leave behind.
#
#   scripts/tmp-guard.sh CMD [ARG...]   runs CMD with TMPDIR set to a fresh folder of its own,
#                                       then checks that folder as --check does
#   scripts/tmp-guard.sh --check DIR    fails when DIR holds what a provium test makes
#                                       (a name starting with "pv": pv-*, pvt-*, pvb-*), naming
#                                       each with what is in it; then removes DIR. Both also
#                                       fail when a test under test/ makes a folder under /tmp
#                                       itself (mkdtemp('/tmp/...')), out of TMPDIR's reach
#
# Node's os.tmpdir() and mktemp honour TMPDIR, so every test folder of the run lands in DIR and
# only there: runs in parallel, or other programs' folders under /tmp, are never counted.
# Other programs' leftovers in DIR are listed but do not fail the run.
# Exit code: CMD's when it failed, else 1 when tests left folders, else 0 (2: bad usage).
set -uo pipefail

check() {
  local dir=$1 f bad=0
  shopt -s nullglob dotglob
  local ours=("$dir"/pv*) all=("$dir"/*)
  if ((${#ours[@]})); then
    bad=1
    echo "# FAIL: the tests left ${#ours[@]} temporary folder(s); every test must remove what it creates (test/unit/helpers.ts: tempDir):" >&2
    for f in "${ours[@]}"; do
      echo "#   ${f##*/}: $(cd "$f" 2>/dev/null && find . -mindepth 1 -maxdepth 2 -printf '%P ' | head -c 300)" >&2
    done
  fi
  # A test that makes its folder straight under /tmp escapes TMPDIR, and so this check.
  local hits
  if hits=$(grep -rnE "mkdtemp(Sync)?\(\s*['\"\`]/tmp" "$(dirname "$0")/../test"); then
    bad=1
    echo "# FAIL: tests make temporary folders under /tmp itself; use tempDir (test/unit/helpers.ts) or os.tmpdir():" >&2
    echo "$hits" | sed 's/^/#   /' >&2
  fi
  if ((${#all[@]} > ${#ours[@]})); then
    echo "# note: other programs left in the run's TMPDIR (removed):" >&2
    for f in "${all[@]}"; do [[ ${f##*/} == pv* ]] || echo "#   ${f##*/}" >&2; done
  fi
  rm -rf --one-file-system -- "$dir"
  return $bad
}

case "${1:-}" in
  '') echo "usage: $0 CMD [ARG...] | $0 --check DIR" >&2; exit 2 ;;
  --check)
    [[ -d ${2:-} ]] || { echo "$0: --check needs a folder" >&2; exit 2; }
    check "$2"; exit $? ;;
esac

dir=$(mktemp -d -t provium-tests.XXXXXX) || exit 2
rc=0
TMPDIR=$dir "$@" || rc=$?
check "$dir" || { ((rc)) || rc=1; }
exit $rc
