#!/usr/bin/env bash
# Starts (or stops) a Podman API service of its own for the opt-in Podman run of the runner
# conformance suite:
#
#   tests/services/podman_service.sh start DIR     # prints the socket path
#   BITFUSION_TEST_PODMAN_SOCKET=DIR/p.sock build/bin/docker_integration_test \
#       --gtest_filter='Engines/*podman'
#   tests/services/podman_service.sh stop DIR
#
# Needs podman, runc and catatonit (apt-get install podman catatonit). crun fails on hosts
# with a hybrid cgroup v1 mount and without CAP_SYS_RESOURCE, hence runc and explicit ulimits.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the storage, socket and log of the service}
export CONTAINERS_CONF=$dir/containers.conf

case $action in
  start)
    mkdir -p "$dir"
    cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
    podman --root "$dir/root" --runroot "$dir/run" system service --time=0 "unix://$dir/p.sock" \
      > "$dir/service.log" 2>&1 &
    echo $! > "$dir/service.pid"
    for _ in $(seq 100); do
      curl -sf --unix-socket "$dir/p.sock" http://d/_ping > /dev/null 2>&1 && break
      sleep 0.1
    done
    curl -sf --unix-socket "$dir/p.sock" http://d/_ping > /dev/null || {
      echo "podman service did not come up; see $dir/service.log" >&2
      exit 1
    }
    echo "$dir/p.sock"
    ;;
  stop)
    if [ -f "$dir/service.pid" ]; then
      pid=$(cat "$dir/service.pid")
      kill "$pid" 2> /dev/null || true
      while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
    fi
    # conmon monitors of this service's exec sessions outlive it (their cleanup calls lack the
    # --root above); they are recognised by this service's storage path in their arguments.
    for p in $(pgrep -x conmon || true); do
      if tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -q -- "$dir/"; then
        kill "$p" 2> /dev/null || true
      fi
    done
    # The storage stays mounted after the service ends.
    mount | awk -v d="$dir" 'index($3, d) == 1 {print $3}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
