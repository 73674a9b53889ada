-- The role Dagster, its runs and GitLab CI's jobs connect as (DAGSTER_POSTGRES_URL), with exactly what
-- Dagster's Postgres storage needs: log in to this database, create its tables in schema public (it owns
-- them, and migrates them) and temporary tables. Not a superuser: it cannot create roles or databases, read
-- other databases' data, or run programs on the server (COPY ... PROGRAM), as the image's superuser can.
-- psql variables: role, password, dbname (10-dagster-role.sh passes them).
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO :"role";
GRANT USAGE, CREATE ON SCHEMA public TO :"role";
