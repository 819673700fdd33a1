#!/usr/bin/env bash
# Runs one shard of a Catch2 (v2) test binary: of its test cases, in declaration order,
# every COUNT-th one starting at INDEX (1-based), so that ctest can spread one long suite
# over every core. Usage: catch_shard.sh BINARY INDEX COUNT [catch2 options...]
#
# Test names may hold Catch2's test-spec characters (`,` `[` `]` `*` `"` `~` `\`): each is
# escaped with a backslash. Before running, the shard's spec is listed back through the
# binary and must select exactly the chosen names, so that no test can silently drop out;
# and the shards of one binary together are all of its tests (each name lands in one).
set -euo pipefail
binary=$1 index=$2 count=$3
shift 3
if ! [[ $index =~ ^[0-9]+$ && $count =~ ^[0-9]+$ ]] || ((index < 1 || index > count)); then
  echo "catch_shard: INDEX must be 1..COUNT (got $index of $count)" >&2
  exit 2
fi

mapfile -t names < <("$binary" --list-test-names-only | sed '/^$/d')
if ((${#names[@]} == 0)); then
  echo "catch_shard: $binary lists no test cases" >&2
  exit 1
fi

chosen=() spec=""
for ((i = index - 1; i < ${#names[@]}; i += count)); do
  name=${names[i]}
  chosen+=("$name")
  escaped=$(printf '%s' "$name" | sed 's/[][\\,*"~]/\\&/g')
  spec+="${spec:+,}$escaped"
done
if ((${#chosen[@]} == 0)); then
  echo "catch_shard: shard $index of $count holds no test case (${#names[@]} in all)"
  exit 0
fi

mapfile -t selected < <("$binary" --list-test-names-only "$spec" | sed '/^$/d')
if [[ "$(printf '%s\n' "${selected[@]}")" != "$(printf '%s\n' "${chosen[@]}")" ]]; then
  echo "catch_shard: the spec for shard $index of $count does not select exactly its ${#chosen[@]} test cases" >&2
  diff <(printf '%s\n' "${chosen[@]}") <(printf '%s\n' "${selected[@]}") >&2 || true
  exit 1
fi
echo "catch_shard: shard $index of $count: ${#chosen[@]} of ${#names[@]} test cases"
exec "$binary" "$@" "$spec"
