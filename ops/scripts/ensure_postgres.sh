# Sourced by `make test`: exports ONCOFED_TEST_PG_URL for a PostgreSQL server that answers.
# Uses the machine's server on 127.0.0.1:5432 when it answers; otherwise starts a
# throwaway cluster (Debian's initdb + pg_ctl) on a spare port, stopped when the shell exits.
if [ -n "${ONCOFED_TEST_PG_URL:-}" ]; then
  return 0 2>/dev/null || exit 0
fi
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 \
   && psql -h 127.0.0.1 -p 5432 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  export ONCOFED_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
else
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$pgbin" ]; then
    echo "ensure_postgres: installing Debian's postgresql" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  pgdir=$(mktemp -d /tmp/oncofed-pg.XXXXXX)
  chown -R postgres "$pgdir" 2>/dev/null || true
  pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  runpg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }
  runpg "$pgbin/initdb -q -A trust -U postgres -D $pgdir/data" >&2
  runpg "$pgbin/pg_ctl -s -D $pgdir/data -o '-p $pgport -k $pgdir -c listen_addresses=127.0.0.1' -l $pgdir/log -w start" >&2
  runpg "$pgbin/createdb -h 127.0.0.1 -p $pgport -U postgres test" >&2
  trap "runpg '$pgbin/pg_ctl -s -D $pgdir/data -m fast stop' >/dev/null 2>&1; rm -rf $pgdir" EXIT
  export ONCOFED_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$pgport/test"
fi
echo "PostgreSQL for tests: $ONCOFED_TEST_PG_URL" >&2
