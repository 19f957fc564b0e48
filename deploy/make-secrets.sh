#!/bin/sh
# Write the secret files docker-compose.yml reads (deploy/secrets/), with fresh random passwords.
# Existing files are kept: run it again safely. Hex passwords need no percent-encoding inside the URLs.
set -eu
cd "$(dirname "$0")/secrets"
umask 077
new() { [ -s "$1" ] || { printf '%s' "$2" > "$1"; echo "wrote secrets/$1"; }; }
new postgres_password "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
new minio_root_user lienthong-admin
new minio_root_password "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
pg="$(cat postgres_password)"; s3u="$(cat minio_root_user)"; s3p="$(cat minio_root_password)"
for n in axis agency; do
  new "${n}_database_url" "postgresql+psycopg://lienthong:${pg}@postgres:5432/lienthong_${n}"
  new "${n}_object_store" "s3://${s3u}:${s3p}@minio:9000/lienthong-${n}?secure=false&region=us-east-1"
done
