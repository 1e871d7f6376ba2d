#!/bin/sh
# Build stage of every image: a small Java runtime at /opt/jre for multi-model-server (whose
# front end is Java), cut by jlink from Debian's JDK to the modules it uses (~45 MB, not ~200).
set -eu
apt-get update -qq
# Slim and minbase images have no man directories, which the JDK's postinst links into.
mkdir -p /usr/share/man/man1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless binutils >/dev/null
# binutils: jlink --strip-debug runs objcopy.
# java.base: core; java.logging, java.management, java.naming, java.xml: log4j2 and its XML
# configuration; java.desktop: java.beans, which log4j2 loads at start; jdk.unsupported: netty's
# use of sun.misc.Unsafe; java.sql: log4j2 date types.
jlink --add-modules java.base,java.desktop,java.logging,java.management,java.naming,java.sql,java.xml,jdk.unsupported \
  --strip-debug --no-man-pages --no-header-files --compress=2 --output /opt/jre
# --strip-debug leaves the symbol tables: libjvm.so alone keeps 4 MB of them.
find /opt/jre -name '*.so' -exec strip --strip-unneeded {} +
/opt/jre/bin/java -version
