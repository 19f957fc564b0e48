#!/usr/bin/env bash
# Make sure the system tools the test suite uses are present: independent verifiers (xmlsec1, pdfsig with
# an NSS database), a PKCS#11 token (SoftHSM2), a Vietnamese-capable Times-compatible font and PostgreSQL
# (the tests start their own throwaway cluster; no system service is used).
# Installs what is missing with apt-get when it can (root, Debian/Ubuntu). Under CI=true a tool that is
# still missing is an error; elsewhere the tests that need it skip and say why.
set -uo pipefail

declare -A PACKAGE_OF=(
  [xmlsec1]=xmlsec1
  [pdfsig]=poppler-utils
  [certutil]=libnss3-tools
  [softhsm2-util]=softhsm2
  [pkcs11-tool]=opensc
  [openssl]=openssl
)
FILES_OF=(/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf)
FILE_PACKAGE=fonts-liberation2

missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
for f in "${FILES_OF[@]}"; do
  [ -e "$f" ] || missing+=("$FILE_PACKAGE")
done
# A real PostgreSQL for the database tests: Debian keeps initdb off the PATH, under /usr/lib/postgresql/*/bin.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing $packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $packages >/dev/null
  status=$?
else
  status=1
fi
if [ $status -ne 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "system-deps: cannot install $packages (needed by the test suite under CI)" >&2
    exit 1
  fi
  echo "system-deps: missing $packages; the tests that need them will be skipped (run as root to install)" >&2
fi
exit 0
