#!/bin/sh
# Run once by the postgres image when it initializes its data folder (/docker-entrypoint-initdb.d): creates the
# non-superuser role of DAGSTER_POSTGRES_URL (sql/dagster-role.sql). The image's own POSTGRES_USER stays the
# administrator, used by nothing else.
set -eu
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v role="${DAGSTER_DB_USER:-dagster_app}" -v password="$DAGSTER_DB_PASSWORD" -v dbname="$POSTGRES_DB" \
  -f /docker-entrypoint-initdb.d/sql/dagster-role.sql
