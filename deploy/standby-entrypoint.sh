#!/bin/sh
# A hot standby of the `db` service: copied with pg_basebackup -R (a replication slot of its own,
# so the primary keeps the WAL it needs across restarts) the first time, then started in recovery.
set -eu
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until su-exec postgres pg_isready -h db -U replicator -d postgres >/dev/null 2>&1; do sleep 1; done
  su-exec postgres env PGPASSWORD="$REPLICATION_PASSWORD" \
    pg_basebackup -h db -U replicator -D "$PGDATA" -R -X stream -c fast -C -S standby_1 -P
fi
exec su-exec postgres postgres -D "$PGDATA" \
  -c hot_standby=on -c hot_standby_feedback=on -c max_standby_streaming_delay=5s
