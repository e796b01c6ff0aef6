#!/bin/sh
# The postgres image's entrypoint: on first start (no PG_VERSION in $PGDATA, as in a new volume) it runs
# initdb, with POSTGRES_PASSWORD as the password of the `postgres` role; then it execs the server, which
# replaces the shell. Only shell built-ins are used: the image has dash (initdb needs /bin/sh anyway, for its
# popen() calls) but no coreutils.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres-entrypoint: $PGDATA is empty and POSTGRES_PASSWORD is not set;" \
             "set it (docker run -e POSTGRES_PASSWORD=...) to create the database cluster" >&2
        exit 1
    fi
    # The password reaches initdb through a pipe, never a file or the command line.
    printf '%s\n' "$POSTGRES_PASSWORD" | initdb --pgdata="$PGDATA" --username=postgres --pwfile=/dev/stdin \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    # initdb allows host connections from 127.0.0.1 and ::1 only; a client outside the container comes from
    # the engine's network.
    printf '%s\n' "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
