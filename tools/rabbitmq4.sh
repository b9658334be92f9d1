#!/usr/bin/env bash
# RabbitMQ 4.x from Debian's own packages, beside the machine's broker and without Docker: a
# minimal Debian root (debootstrap --variant=minbase) with rabbitmq-server installed in it by apt,
# and one node run from it with a name, ports, epmd, Erlang cookie and data of its own. CI runs
# the test suite against it (see "Testing against another broker" in README.md).
#
#   tools/rabbitmq4.sh setup          # make the Debian root; reused when it is there and works
#   tools/rabbitmq4.sh start          # start the node; returns once it accepts connections
#   tools/rabbitmq4.sh status         # the node up or down, its version; exits 0 only if up
#   tools/rabbitmq4.sh stop           # stop the node and whatever else runs in the root
#   tools/rabbitmq4.sh env            # `export` lines for the tests, to use with eval
#   tools/rabbitmq4.sh ctl ARGS...    # the root's rabbitmqctl, against the node unless -n is given
#   tools/rabbitmq4.sh exec CMD...    # any command of the root, as its rabbitmq user
#
#   tools/rabbitmq4.sh setup && tools/rabbitmq4.sh start
#   eval "$(tools/rabbitmq4.sh env)" && deno task test
#
# --suite SUITE (first argument; or RABBITMQ4_SUITE) picks the Debian release: sid (the default)
# carries the newest 4.x, trixie 4.0. Each suite has a root, node and ports of its own, so both
# can run at once:
#
#   suite   node                 AMQP   management  distribution  epmd  local cluster
#   sid     rabbit4@localhost    5673   15673       25673         4370  5691-5693
#   trixie  rabbit40@localhost   5674   15674       25674         4371  5694-5696
#
# The roots live in $RABBITMQ4_DIR (default /var/lib/taskq-rabbitmq4), as SUITE-root. Packages
# come from the Debian mirror the machine's apt uses (its sources files), or $RABBITMQ4_MIRROR.
# The root's rabbitmq user gets the uid and gid of the machine's, and the machine's /tmp is
# mounted on the root's /tmp, so the node reads files tests leave there (TLS certificates) and
# files it writes there belong to the same user on both sides. Its epmd listens on 127.0.0.1 on a
# port of its own, so nothing of it registers with the machine's epmd.
#
# `start` mounts /proc and /tmp in the root and `stop` unmounts them; `stop` works whatever state
# the node is in and exits 0 once no process is left in the root. Progress goes to stderr; stdout
# is only what `env`, `status`, `ctl` and `exec` print. Needs root (chroot, mount).
set -euo pipefail

SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
SUITE=${RABBITMQ4_SUITE:-sid}
if [ "${1:-}" = --suite ]; then
  SUITE=${2:?--suite needs a value: sid or trixie}
  shift 2
fi
case "$SUITE" in
  sid) NODE=rabbit4@localhost OFFSET=0 ;;
  trixie) NODE=rabbit40@localhost OFFSET=1 ;;
  *)
    echo "rabbitmq4: unknown suite \"${SUITE}\": expected sid or trixie" >&2
    exit 2
    ;;
esac
AMQP_PORT=$((5673 + OFFSET))
MANAGEMENT_PORT=$((15673 + OFFSET))
DIST_PORT=$((25673 + OFFSET))
EPMD_PORT=$((4370 + OFFSET))
CLUSTER_AMQP_PORT=$((5691 + 3 * OFFSET))
CLUSTER_DIST_PORT=$((25691 + 3 * OFFSET))
BASE=${RABBITMQ4_DIR:-/var/lib/taskq-rabbitmq4}
ROOT="${BASE}/${SUITE}-root"
# Seconds the node may take to boot, and to stop.
START_TIMEOUT=${RABBITMQ4_START_TIMEOUT:-120}
STOP_TIMEOUT=30
RABBITMQ_HOME=/var/lib/rabbitmq
ROOT_PATH=/usr/lib/rabbitmq/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "rabbitmq4: $(date +%T) $*" >&2; }
die() {
  say "$*"
  exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_root() {
  [ "$(id -u)" = 0 ] || die "needs root (chroot, mount); run it with sudo"
}

# The uid:gid of the root's rabbitmq user (the machine's, when setup could match them).
broker_ids() {
  local uid gid
  uid=$(awk -F: '$1 == "rabbitmq" { print $3 }' "${ROOT}/etc/passwd")
  gid=$(awk -F: '$1 == "rabbitmq" { print $4 }' "${ROOT}/etc/passwd")
  if [ -z "$uid" ] || [ -z "$gid" ]; then die "no rabbitmq user in ${ROOT}; run setup again"; fi
  echo "${uid}:${gid}"
}

# Runs a command of the root as its rabbitmq user, with the node's epmd. The environment passes
# through (tools/local_cluster.sh gives its nodes their settings that way).
in_root() {
  local ids
  ids=$(broker_ids)
  cd /
  exec chroot --userspec="$ids" --groups="${ids#*:}" "$ROOT" \
    /usr/bin/env HOME="$RABBITMQ_HOME" PATH="$ROOT_PATH" LANG=C.UTF-8 \
    ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 "$@"
}

# The root's rabbitmqctl, in a clean environment, against our node unless the arguments name one.
ctl() {
  local arg node_given=0
  for arg in "$@"; do
    case "$arg" in -n | --node | --node=*) node_given=1 ;; esac
  done
  local args=("$@")
  [ "$node_given" = 1 ] || args=(-n "$NODE" "$@")
  (
    # What the caller exported (RABBITMQ_NODENAME, say) must not change which node this is.
    while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(RABBITMQ_|ERL_)')
    in_root rabbitmqctl "${args[@]}"
  )
}

# The Debian mirror of the machine's apt sources: the first one that serves its own release.
debian_mirror() {
  if [ -n "${RABBITMQ4_MIRROR:-}" ]; then
    echo "$RABBITMQ4_MIRROR"
    return
  fi
  local codename mirror=""
  # shellcheck source=/dev/null
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot tell this machine's Debian release; set RABBITMQ4_MIRROR"
  local files=(/etc/apt/sources.list.d/*.sources)
  if [ -e "${files[0]}" ]; then
    # deb822 stanzas: Types, URIs, Suites ... separated by blank lines.
    mirror=$(awk -v codename="$codename" '
      function flush() { if (deb && suite && uri != "") { print uri; found = 1; exit } }
      /^[ \t]*$/ { flush(); deb = 0; suite = 0; uri = ""; next }
      /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == codename) suite = 1 }
      END { if (!found) flush() }
    ' "${files[@]}" | head -n 1)
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(sed -nE "s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+${codename}[[:space:]].*/\2/p" \
      /etc/apt/sources.list | head -n 1)
  fi
  [ -n "$mirror" ] || die "no Debian mirror for ${codename} in the apt sources; set RABBITMQ4_MIRROR"
  echo "$mirror"
}

# Mount points at or under $1, deepest first.
mounts_under() {
  awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r
}

unmount_all() {
  local point
  for point in $(mounts_under "$1"); do
    umount "$point" 2>/dev/null || umount -l "$point"
  done
}

# Deletes a root, only once nothing is mounted in it (the machine's /tmp is, while it runs).
remove_root() {
  local dir=$1
  [ -e "$dir" ] || return 0
  unmount_all "$dir"
  [ -z "$(mounts_under "$dir")" ] || die "still mounted under ${dir}: $(mounts_under "$dir")"
  rm -rf --one-file-system "$dir"
}

# Processes whose root directory is the Debian root.
root_processes() {
  local proc
  for proc in /proc/[0-9]*; do
    [ "$(readlink "${proc}/root" 2>/dev/null)" = "$ROOT" ] && echo "${proc#/proc/}"
  done
  return 0
}

root_works() {
  [ -f "${ROOT}/.taskq-ready" ] || return 1
  [ -x "${ROOT}/usr/lib/rabbitmq/bin/rabbitmq-server" ] || return 1
  chroot "$ROOT" dpkg-query -W -f="\${Status}" rabbitmq-server 2>/dev/null |
    grep -qx 'install ok installed' || return 1
  # The rabbitmq user must still be the machine's (the same uid on both sides of /tmp).
  if id -u rabbitmq >/dev/null 2>&1; then
    [ "$(broker_ids)" = "$(id -u rabbitmq):$(id -g rabbitmq)" ] || return 1
  fi
}

root_version() {
  chroot "$ROOT" dpkg-query -W -f="\${Version}" rabbitmq-server 2>/dev/null || echo unknown
}

setup() {
  require_root
  mkdir -p "$BASE"
  if root_works; then
    say "reusing ${ROOT} (rabbitmq-server $(root_version))"
    return
  fi
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local mirror build="${ROOT}.partial" started=$SECONDS
  mirror=$(debian_mirror)
  if [ -e "$ROOT" ]; then
    say "${ROOT} is incomplete or out of date; making it again"
    stop_node
    remove_root "$ROOT"
  fi
  remove_root "$build"
  say "debootstrap --variant=minbase ${SUITE} from ${mirror}"
  debootstrap --variant=minbase "$SUITE" "$build" "$mirror" >"${BASE}/${SUITE}-debootstrap.log" 2>&1 ||
    die "debootstrap failed; see ${BASE}/${SUITE}-debootstrap.log"
  # Node names are NAME@localhost: localhost must resolve inside the root too.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"${build}/etc/hosts"
  # No service starts inside the root when its package is installed.
  printf '#!/bin/sh\nexit 101\n' >"${build}/usr/sbin/policy-rc.d"
  chmod 755 "${build}/usr/sbin/policy-rc.d"
  # sid's Release file can be past its validity date on a mirror; the packages are still signed.
  echo 'Acquire::Check-Valid-Until "false";' >"${build}/etc/apt/apt.conf.d/99taskq"
  if id -u rabbitmq >/dev/null 2>&1; then
    chroot "$build" groupadd --system -g "$(id -g rabbitmq)" rabbitmq
    chroot "$build" useradd --system -u "$(id -u rabbitmq)" -g "$(id -g rabbitmq)" \
      -d "$RABBITMQ_HOME" -s /usr/sbin/nologin rabbitmq
  fi
  mount -t proc proc "${build}/proc"
  say "apt-get install rabbitmq-server (in the root)"
  if ! (chroot "$build" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$build" apt-get install -y -qq \
      --no-install-recommends rabbitmq-server && chroot "$build" apt-get clean) \
    >"${BASE}/${SUITE}-apt.log" 2>&1; then
    unmount_all "$build"
    die "apt-get install rabbitmq-server failed; see ${BASE}/${SUITE}-apt.log"
  fi
  unmount_all "$build"
  touch "${build}/.taskq-ready"
  mv "$build" "$ROOT"
  say "made ${ROOT} with rabbitmq-server $(root_version) in $((SECONDS - started)) s"
}

write_config() {
  local etc="${ROOT}/etc/rabbitmq"
  mkdir -p "$etc"
  cat >"${etc}/rabbitmq-env.conf" <<EOF
# Written by tools/rabbitmq4.sh start.
NODENAME=${NODE}
DIST_PORT=${DIST_PORT}
EOF
  cat >"${etc}/rabbitmq.conf" <<EOF
# Written by tools/rabbitmq4.sh start.
listeners.tcp.local = 127.0.0.1:${AMQP_PORT}
management.tcp.ip = 127.0.0.1
management.tcp.port = ${MANAGEMENT_PORT}
log.console = false
EOF
  # The management API is on for the tests (TEST_MANAGEMENT_URL), as in the composed broker.
  echo '[rabbitmq_management].' >"${etc}/enabled_plugins"
}

node_up() { ctl -q ping >/dev/null 2>&1; }

start() {
  require_root
  root_works || die "no working root at ${ROOT}; run: $0 --suite ${SUITE} setup"
  if port_open "$AMQP_PORT" && node_up; then
    say "${NODE} is already running on 127.0.0.1:${AMQP_PORT}"
    return
  fi
  local port
  for port in "$AMQP_PORT" "$MANAGEMENT_PORT" "$DIST_PORT"; do
    port_open "$port" && die "port ${port} is taken by another program"
  done
  [ -n "$(mounts_under "${ROOT}/proc")" ] || mount -t proc proc "${ROOT}/proc"
  [ -n "$(mounts_under "${ROOT}/tmp")" ] || mount --bind /tmp "${ROOT}/tmp"
  write_config
  local log="${ROOT}/var/log/rabbitmq/server.out"
  : >"$log"
  say "starting ${NODE} (rabbitmq-server $(root_version)) from ${ROOT}"
  (
    cd /
    ulimit -n 65536 2>/dev/null || true
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    exec setsid env -i PATH="$HOST_PATH" \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS" \
      "$SCRIPT" --suite "$SUITE" exec rabbitmq-server
  ) </dev/null >>"$log" 2>&1 &
  local launcher=$! deadline=$((SECONDS + START_TIMEOUT))
  # The AMQP port opens near the end of the boot; await_startup then makes sure it is complete.
  until port_open "$AMQP_PORT"; do
    if ! kill -0 "$launcher" 2>/dev/null; then
      say "rabbitmq-server exited while booting; the end of ${log}:"
      tail -n 20 "$log" >&2
      stop_node
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "${NODE} did not boot within ${START_TIMEOUT} s; the end of ${log}:"
      tail -n 20 "$log" >&2
      stop_node
      exit 1
    fi
    sleep 0.2
  done
  ctl -q await_startup --timeout "$START_TIMEOUT" >/dev/null ||
    die "${NODE} did not finish booting"
  say "${NODE} running: AMQP on 127.0.0.1:${AMQP_PORT} (guest/guest), management on 127.0.0.1:${MANAGEMENT_PORT}"
}

# Stops the node however far it got, then whatever else runs in the root (its epmd, nodes of a
# local cluster), then unmounts /proc and /tmp.
stop_node() {
  if port_open "$DIST_PORT"; then
    timeout "$STOP_TIMEOUT" "$SCRIPT" --suite "$SUITE" ctl -q stop >/dev/null 2>&1 || true
  fi
  local pids waited termed=0
  for waited in $(seq 1 $((STOP_TIMEOUT * 5))); do
    mapfile -t pids < <(root_processes)
    [ "${#pids[@]}" -gt 0 ] || break
    # Whatever is left once the node is gone (its epmd, for one), or after 5 s, is asked to end,
    # and made to after 15 s.
    if [ "$termed" = 0 ] && { [ "$waited" -ge 25 ] || ! port_open "$DIST_PORT"; }; then
      kill -TERM "${pids[@]}" 2>/dev/null || true
      termed=1
    fi
    if [ "$waited" = 75 ]; then
      say "killing what is left in ${ROOT}: ${pids[*]}"
      kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    sleep 0.2
  done
  mapfile -t pids < <(root_processes)
  [ "${#pids[@]}" = 0 ] || die "processes still running in ${ROOT}: ${pids[*]}"
  unmount_all "${ROOT}/tmp"
  unmount_all "${ROOT}/proc"
}

stop() {
  require_root
  [ -d "$ROOT" ] || {
    say "no root at ${ROOT}; nothing to stop"
    return
  }
  stop_node
  say "stopped ${NODE}"
}

status() {
  require_root
  if [ -d "$ROOT" ] && port_open "$AMQP_PORT" && node_up; then
    echo "${NODE}: running, rabbitmq-server $(root_version), amqp://127.0.0.1:${AMQP_PORT}"
  elif [ -d "$ROOT" ] && port_open "$DIST_PORT"; then
    echo "${NODE}: node up, RabbitMQ application stopped"
    return 1
  else
    echo "${NODE}: down"
    return 1
  fi
}

print_env() {
  local self="${SCRIPT} --suite ${SUITE}"
  cat <<EOF
export AMQP_URL='amqp://guest:guest@127.0.0.1:${AMQP_PORT}'
export TEST_RABBITMQCTL='${self} ctl'
export TEST_MANAGEMENT_URL='http://127.0.0.1:${MANAGEMENT_PORT}'
export TEST_BROKER_LOCAL=1
export LOCAL_CLUSTER_EXEC='${self} exec'
export LOCAL_CLUSTER_DIR='/tmp/workqueue-cluster-${SUITE}'
export LOCAL_CLUSTER_AMQP_PORT=${CLUSTER_AMQP_PORT}
export LOCAL_CLUSTER_DIST_PORT=${CLUSTER_DIST_PORT}
EOF
}

usage() {
  echo "Usage: $0 [--suite sid|trixie] setup|start|status|stop|env|ctl ARGS...|exec CMD..." >&2
  exit 2
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  ctl)
    require_root
    ctl "$@"
    ;;
  exec)
    require_root
    [ $# -gt 0 ] || usage
    in_root "$@"
    ;;
  *) usage ;;
esac
