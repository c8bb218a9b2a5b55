#!/usr/bin/env bash
# Build a root filesystem tarball for a local image, from files already on this machine (no registry, no network).
#   scripts/rootfs.sh busybox OUT.tar   static busybox only (about 2 MB)
#   scripts/rootfs.sh python  OUT.tar   Debian's /usr/bin/python3.11, its stdlib and the shared libraries it loads,
#                                       plus busybox for a shell (about 50 MB)
set -euo pipefail
KIND=$1 OUT=$2
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

add_python() {
  local py=/usr/bin/python3.11 arch lib
  arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  mkdir -p "$R/usr/lib/$arch"
  cp -a "$py" "$R/usr/bin/python3.11"; ln -sf python3.11 "$R/usr/bin/python3"; ln -sf python3.11 "$R/usr/bin/python"
  tar -C /usr/lib -cf - --exclude='python3.11/config-3.11-*' --exclude='python3.11/test' --exclude='python3.11/idlelib' \
    --exclude='python3.11/tkinter' --exclude='python3.11/turtledemo' --exclude='python3.11/lib2to3/tests' \
    --exclude='python3.11/dist-packages' --exclude='__pycache__' python3.11 | tar -C "$R/usr/lib" -xf -
  rm -f "$R/usr/lib/python3.11/sitecustomize.py"   # Debian's points into /etc, which the image does not carry
  # every shared library the interpreter and its extension modules load, plus libgcc_s (dlopened by glibc for unwinding)
  { ldd "$py"; for so in /usr/lib/python3.11/lib-dynload/*.so; do ldd "$so"; done; } 2>/dev/null \
    | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/lib64\// {print $1}' | sort -u >"$R/.libs"
  ls "/lib/$arch/libgcc_s.so.1" >>"$R/.libs"
  while read -r lib; do
    case $lib in /lib64/*) cp -L "$lib" "$R/usr/lib64/" ;; *) cp -L "$lib" "$R/usr/lib/$arch/" ;; esac
  done <"$R/.libs"
  rm "$R/.libs"
  echo "/usr/lib/$arch" >"$R/etc/ld.so.conf"
  ldconfig -r "$R"
}

base_layout
case $KIND in
busybox) ;;
python) add_python ;;
*) echo "usage: $0 busybox|python OUT.tar" >&2; exit 2 ;;
esac
tar -C "$R" -cf "$OUT.tmp" . && mv "$OUT.tmp" "$OUT"
