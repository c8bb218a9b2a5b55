#!/usr/bin/env bash
# Build a root filesystem tarball for a local image, from files already on this machine (no registry, no network).
#   scripts/rootfs.sh busybox OUT.tar   static busybox only (about 2 MB)
#   scripts/rootfs.sh python  OUT.tar   Debian's /usr/bin/python3.11, its stdlib and the shared libraries it loads,
#                                       plus busybox for a shell (about 50 MB)
#   scripts/rootfs.sh postgres OUT.tar  the files of Debian's installed postgresql-NN and postgresql-client-NN packages
#                                       (no docs, no LLVM JIT), the libraries they load, time zones, busybox, the
#                                       entrypoint deploy/postgres/entrypoint.sh and a 'postgres' user, uid 999
set -euo pipefail
KIND=$1 OUT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT

base_layout() {
  mkdir -p "$R"/{usr/bin,usr/lib,usr/lib64,etc,tmp,proc,sys,dev,root,home/agent}
  chmod 1777 "$R/tmp"
  ln -s usr/bin "$R/bin"; ln -s usr/bin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
  # uid 1000 is the unprivileged user agents run as
  printf 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
    >"$R/etc/passwd"
  printf 'root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n' >"$R/etc/group"
  cp /bin/busybox "$R/usr/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do [ -e "$R/usr/bin/$applet" ] || ln -s busybox "$R/usr/bin/$applet"; done
}

copy_libs() {  # every shared library the given ELF files load (and glibc's libgcc_s, dlopened for unwinding)
  mkdir -p "$R/usr/lib/$ARCH"
  local f lib
  for f in "$@"; do ldd "$f" 2>/dev/null || true; done \
    | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/lib64\// {print $1}' | sort -u >"$R/.libs"
  ls "/lib/$ARCH/libgcc_s.so.1" >>"$R/.libs"
  while read -r lib; do
    case $lib in /lib64/*) cp -L "$lib" "$R/usr/lib64/" ;; *) cp -L "$lib" "$R/usr/lib/$ARCH/" ;; esac
  done <"$R/.libs"
  rm "$R/.libs"
  echo "/usr/lib/$ARCH" >"$R/etc/ld.so.conf"
  ldconfig -r "$R"
}

add_python() {
  local py=/usr/bin/python3.11
  cp -a "$py" "$R/usr/bin/python3.11"; ln -sf python3.11 "$R/usr/bin/python3"; ln -sf python3.11 "$R/usr/bin/python"
  tar -C /usr/lib -cf - --exclude='python3.11/config-3.11-*' --exclude='python3.11/test' --exclude='python3.11/idlelib' \
    --exclude='python3.11/tkinter' --exclude='python3.11/turtledemo' --exclude='python3.11/lib2to3/tests' \
    --exclude='python3.11/dist-packages' --exclude='__pycache__' python3.11 | tar -C "$R/usr/lib" -xf -
  rm -f "$R/usr/lib/python3.11/sitecustomize.py"   # Debian's points into /etc, which the image does not carry
  copy_libs "$py" /usr/lib/python3.11/lib-dynload/*.so
  # what binary wheels (manylinux) may expect from the system: all of glibc's libraries (libpthread.so.0, libdl.so.2,
  # … are stubs since glibc 2.34, but wheels still link them) and libstdc++
  local lib
  for lib in $(dpkg -L libc6 | grep -E "^/(usr/)?lib/$ARCH/[^/]+\.so[.0-9]*\$") "/usr/lib/$ARCH/libstdc++.so.6"; do
    [ -e "$R/usr/lib/$ARCH/$(basename "$lib")" ] || cp -L "$lib" "$R/usr/lib/$ARCH/"
  done
  ldconfig -r "$R"
}

add_postgres() {
  local bin version
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  version=$(basename "$(dirname "$bin")")
  # the packages' own file lists; directories come along as entries (--no-recursion), so their modes are kept
  dpkg -L "postgresql-$version" "postgresql-client-$version" \
    | grep -v -e '^/usr/share/doc' -e '^/usr/share/man' -e '^/usr/share/locale' -e '^/usr/share/lintian' \
      -e '/llvmjit' -e '/bitcode' -e '^/etc' -e '^/\.$' \
    | tar -C / -cf - --no-recursion -T - | tar -C "$R" -xf -
  # time zones (Debian builds PostgreSQL against the system's), and the C.UTF-8 locale the entrypoint's initdb uses
  tar -C / -cf - usr/share/zoneinfo usr/lib/locale/C.utf8 | tar -C "$R" -xf -
  copy_libs "$R$bin"/* "$R/usr/lib/postgresql/$version/lib"/*.so
  printf 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >>"$R/etc/passwd"
  printf 'postgres:x:999:\n' >>"$R/etc/group"
  mkdir -p "$R/var/lib/postgresql/data" "$R/var/run/postgresql" "$R/usr/local/bin"
  chown -R 999:999 "$R/var/lib/postgresql" "$R/var/run/postgresql"
  chmod 700 "$R/var/lib/postgresql/data"
  install -m 755 "$ROOT/deploy/postgres/entrypoint.sh" "$R/usr/local/bin/docker-entrypoint.sh"
  local program   # on PATH without naming the version (PostgreSQL follows the link to find its share directory)
  for program in "$bin"/*; do ln -s "$program" "$R/usr/local/bin/$(basename "$program")"; done
}

base_layout
case $KIND in
busybox) ;;
python) add_python ;;
postgres) add_postgres ;;
*) echo "usage: $0 busybox|python|postgres OUT.tar" >&2; exit 2 ;;
esac
tar -C "$R" -cf "$OUT.tmp" . && mv "$OUT.tmp" "$OUT"
