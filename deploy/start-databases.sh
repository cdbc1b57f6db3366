#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, user postgres, database test) and MariaDB/MySQL (127.0.0.1:3306, user
# root without password, database test) answer, for the database tests: starts them if they are installed but
# stopped, installs them from Debian's packages if they are missing (needs root), and creates the `test`
# databases. Does nothing when UNSILO_TEST_POSTGRES / UNSILO_TEST_MYSQL point at other servers.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "start-databases: $what did not come up" >&2
  return 1
}

if [ -z "${UNSILO_TEST_POSTGRES:-}" ]; then
  if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
      echo "start-databases: installing PostgreSQL" >&2
      as_root apt-get update -qq >&2
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "start-databases: starting PostgreSQL $version" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    as_root su postgres -c "psql -c \"ALTER USER postgres PASSWORD NULL\"" >/dev/null 2>&1 || true
    as_root su postgres -c "createdb test" >&2 || true
  fi
fi

if [ -z "${UNSILO_TEST_MYSQL:-}" ]; then
  if ! mysqladmin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
    if [ ! -x /usr/sbin/mariadbd ]; then
      echo "start-databases: installing MariaDB" >&2
      as_root apt-get update -qq >&2
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >&2
    fi
    echo "start-databases: starting MariaDB" >&2
    as_root mkdir -p /run/mysqld
    as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2
    wait_for MariaDB mysqladmin -h 127.0.0.1 -uroot ping
  fi
  mysql -h 127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >&2 || true
fi
