#!/usr/bin/env bash
# Reruns the load and fault figures of BENCHMARKS.md and docs/reliability.md: builds the
# release binary once, then runs every scenario of benches/reliability.rs on loopback.
#
#   scripts/reliability.sh            # the sustained load for the full 300 s (~8 minutes in all)
#   scripts/reliability.sh 30         # a shorter sustained load
#
# disk-full mounts a tmpfs, so it needs root. The PostgreSQL scenarios use
# RELIABILITY_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, where
# each creates and drops a database of its own) and restart the server with
# RELIABILITY_PG_RESTART (default: pg_ctlcluster … main restart).
# Exits non-zero when any scenario fails; the servers' logs are in target/reliability/.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}

# One build: the bench profile is the release profile, and it builds target/release/genderlens
# as well as the driver (a separate `cargo build --release` would be rebuilt over).
cargo bench --bench reliability --no-run || exit 1

failed=()
for scenario in "sustained --seconds $seconds" kill9 "kill9 --postgres" disk-full pg-restart; do
    echo "== $scenario"
    # shellcheck disable=SC2086 # the scenario's arguments are split on purpose
    cargo bench -q --bench reliability -- $scenario || failed+=("$scenario")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
echo "all scenarios passed"
