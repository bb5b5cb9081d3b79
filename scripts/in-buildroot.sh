#!/bin/sh
# Runs a shell command inside the build root (scripts/setup-buildroot.sh) with /proc, /dev, the host's DNS
# set-up and the given bind mounts, in a private mount namespace: the mounts vanish when it ends, however
# it ends. The environment is cleaned (HOME, PATH with the root's Node 20, then the -e values).
# Usage: scripts/in-buildroot.sh ROOT [-r SRC DST] [-w SRC DST] [-e NAME=VALUE]... -- 'COMMAND'
#   -r / -w: bind SRC (host) at DST (in the root) read-only / writable. Paths must not contain spaces.
set -eu
root=$1; shift
binds="" envs=""
while [ $# -gt 0 ]; do
  case $1 in
    -r|-w) binds="$binds $2:$3:${1#-}"; shift 3 ;;
    -e) envs="$envs $2"; shift 2 ;;
    --) shift; break ;;
    *) echo "in-buildroot: unknown option $1" >&2; exit 2 ;;
  esac
done
exec unshare -m --propagation private sh -eu -c '
  root=$1 binds=$2 cmd=$3; shift 3
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  for b in $binds; do
    src=${b%%:*} rest=${b#*:}; dst=${rest%:*} mode=${rest##*:}
    mkdir -p "$root$dst"
    if [ "$mode" = r ]; then mount --bind -o ro "$src" "$root$dst"; else mount --bind "$src" "$root$dst"; fi
  done
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  exec chroot "$root" env -i HOME=/root PATH=/opt/node-x64/bin:/usr/local/bin:/usr/bin:/bin "$@" sh -eu -c "$cmd"
' sh "$root" "$binds" "$1" $envs
