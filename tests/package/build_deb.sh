#!/bin/sh
# The package tests' fixture: builds the .deb from this build tree into a directory of its own.
#   build_deb.sh CPACK_CONFIG OUTPUT_DIR
set -eu
rm -rf "$2"
exec cpack -G DEB --config "$1" -B "$2"
