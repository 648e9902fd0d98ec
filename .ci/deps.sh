#!/usr/bin/env bash
# Debian packages the test suites drive for real: DCMTK and GDCM (references, decoding our output, storescu),
# Orthanc with its DICOMweb and GDCM plugins (a peer client and the bench's yardstick), Chromium (OHIF e2e and
# our own pages), Little CMS's transicc (checks our ICC profiles and colour conversions). Installs only what is missing, so a machine that has them pays nothing.
set -euo pipefail
PKGS=(dcmtk libgdcm-tools orthanc orthanc-dicomweb orthanc-gdcm chromium liblcms2-utils ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Orthanc's Debian package starts a system service on port 8042 (ours' default) and 4242; tests start their own.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop orthanc 2>/dev/null || true; fi
$SUDO service orthanc stop 2>/dev/null || true
