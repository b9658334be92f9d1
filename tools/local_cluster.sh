#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, made from the installed rabbitmq-server, for
# trying quorum queues and failover without Docker. It leaves a broker on 5672 alone: its nodes
# have names, ports, data, logs, config and plugin lists of their own.
#
#   tools/local_cluster.sh start    # a fresh cluster; prints AMQP_URL=amqp://127.0.0.1:5681,...
#   tools/local_cluster.sh status   # each node up or down, the cluster as a node sees it;
#                                   # exits 0 only if all three are running
#   tools/local_cluster.sh stop     # stops the three nodes and deletes their files
#
#   export "$(tools/local_cluster.sh start)"   # then worker.ts and new_task.ts use the cluster
#
# Nodes wq1@localhost, wq2@localhost, wq3@localhost; AMQP on 127.0.0.1:5681-5683 (guest/guest);
# Erlang distribution on 25681-25683; no plugins (no management UI). They boot side by side and
# nodes 2 and 3 join node 1 (peer discovery from their config, `rabbitmqctl join_cluster` as a
# fallback). Stop one with `rabbitmqctl -n wq1@localhost stop_app`, bring it back with
# `start_app`. Files live in $LOCAL_CLUSTER_DIR (default /tmp/workqueue-cluster), owned by the
# user the nodes run as: as root with Debian's package, rabbitmq-server and rabbitmqctl switch
# to the rabbitmq user (the environment passes through), so the nodes share that user's Erlang
# cookie with rabbitmqctl.
#
# `start` always starts from nothing: a cluster left running by an earlier start is stopped and
# its data deleted first. Each step (the boot, a join) has $LOCAL_CLUSTER_STEP_TIMEOUT seconds
# (default 60); if one fails or runs out of time, `start` says which, shows what the node
# printed, stops whatever it started and exits 1. `stop` works whatever state the nodes are in
# (running, half-started, already gone) and exits 0 once none is left. Progress goes to stderr;
# stdout is only the AMQP_URL line. Needs root or the broker's user, like rabbitmqctl.
#
# $LOCAL_CLUSTER_EXEC, when set, is a command line the nodes' rabbitmq-server and rabbitmqctl run
# under, e.g. `tools/rabbitmq4.sh exec` for RabbitMQ 4.x from its Debian root (its /tmp is this
# machine's, so $LOCAL_CLUSTER_DIR must be under /tmp then). $LOCAL_CLUSTER_AMQP_PORT and
# $LOCAL_CLUSTER_DIST_PORT move the three nodes' ports (defaults 5681 and 25681), so that two
# clusters can run at once. The node names need `localhost` to resolve where the nodes run;
# `start` checks that first.
set -euo pipefail

DIR=${LOCAL_CLUSTER_DIR:-/tmp/workqueue-cluster}
# Seconds each step may take: a boot, a join.
STEP_TIMEOUT=${LOCAL_CLUSTER_STEP_TIMEOUT:-60}
NODES=(wq1 wq2 wq3)
HOST=localhost
AMQP_BASE=${LOCAL_CLUSTER_AMQP_PORT:-5681}
DIST_BASE=${LOCAL_CLUSTER_DIST_PORT:-25681}
# The command the nodes and rabbitmqctl run under (none: this machine's rabbitmq-server).
read -r -a EXEC <<<"${LOCAL_CLUSTER_EXEC:-}"

say() { echo "local_cluster: $(date +%T.%N | cut -c1-12) $*" >&2; }
node_name() { echo "${NODES[$1]}@${HOST}"; }
amqp_port() { echo $((AMQP_BASE + $1)); }
dist_port() { echo $((DIST_BASE + $1)); }
node_dir() { echo "${DIR}/${NODES[$1]}"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

amqp_url() {
  local i urls=()
  for i in "${!NODES[@]}"; do urls+=("amqp://127.0.0.1:$(amqp_port "$i")"); done
  local IFS=,
  echo "AMQP_URL=${urls[*]}"
}

# rabbitmqctl against node $1 with a deadline; output goes to that node's ctl.log.
ctl() {
  local i=$1
  shift
  local log
  log="$(node_dir "$i")/ctl.log"
  echo "\$ rabbitmqctl -n $(node_name "$i") $*" >>"$log"
  timeout "$STEP_TIMEOUT" "${EXEC[@]}" rabbitmqctl -n "$(node_name "$i")" "$@" >>"$log" 2>&1
}

# The user the nodes run as: Debian's wrapper runs them as rabbitmq when started by root (and
# tools/rabbitmq4.sh exec always does, with this machine's uid for rabbitmq).
broker_user() {
  if [ "$(id -u)" = 0 ] && id -u rabbitmq >/dev/null 2>&1; then echo rabbitmq; else id -un; fi
}

write_files() {
  local i dir
  mkdir -p "$DIR"
  # rabbitmq-env.conf of our own, so that the system's (NODENAME, ports) does not apply.
  cat >"${DIR}/rabbitmq-env.conf" <<'EOF'
ERL_EPMD_ADDRESS=127.0.0.1
EOF
  echo "[]." >"${DIR}/enabled_plugins"
  for i in "${!NODES[@]}"; do
    dir=$(node_dir "$i")
    mkdir -p "${dir}/data" "${dir}/log"
    {
      echo "listeners.tcp.local = 127.0.0.1:$(amqp_port "$i")"
      echo "log.console = false"
      # Node 1 starts the cluster; the others, booting with no data, join it as soon as it is
      # up, trying every 0.5 s. (Listing every node everywhere would have node 1 wait for
      # peers that are not up yet.)
      if [ "$i" -gt 0 ]; then
        echo "cluster_formation.peer_discovery_backend = classic_config"
        echo "cluster_formation.classic_config.nodes.1 = $(node_name 0)"
        echo "cluster_formation.discovery_retry_limit = $((STEP_TIMEOUT * 2))"
        echo "cluster_formation.discovery_retry_interval = 500"
      fi
    } >"${dir}/rabbitmq.conf"
  done
  chown -R "$(broker_user)" "$DIR"
}

# Starts node $1 in the background, in a session of its own, its output in the node's folder.
launch() {
  local i=$1 dir
  dir=$(node_dir "$i")
  (
    cd /
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME=$(node_name "$i")
    export RABBITMQ_DIST_PORT
    RABBITMQ_DIST_PORT=$(dist_port "$i")
    export RABBITMQ_CONF_ENV_FILE="${DIR}/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="${dir}/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="${dir}/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="${DIR}/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="${dir}/data"
    export RABBITMQ_LOG_BASE="${dir}/log"
    export RABBITMQ_PID_FILE="${dir}/pid"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    if command -v setsid >/dev/null; then exec setsid -w "${EXEC[@]}" rabbitmq-server; fi
    exec "${EXEC[@]}" rabbitmq-server
  ) </dev/null >>"${dir}/server.out" 2>&1 &
  echo "$!" >"${dir}/launcher.pid"
}

# The running members of node 1's cluster, one a line.
running_nodes() {
  timeout "$STEP_TIMEOUT" "${EXEC[@]}" rabbitmqctl -n "$(node_name 0)" -q cluster_status --formatter json \
    2>/dev/null | sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr , '\n'
}

# Waits until every node accepts AMQP connections; fails at once if one's process has died.
wait_for_boot() {
  local i deadline=$((SECONDS + STEP_TIMEOUT)) waiting=1
  while [ "$waiting" = 1 ]; do
    waiting=0
    for i in "${!NODES[@]}"; do
      port_open "$(amqp_port "$i")" && continue
      waiting=1
      kill -0 "$(cat "$(node_dir "$i")/launcher.pid")" 2>/dev/null ||
        fail "$i" "rabbitmq-server exited while booting"
      [ "$SECONDS" -lt "$deadline" ] || fail "$i" "did not boot within ${STEP_TIMEOUT} s"
    done
    [ "$waiting" = 0 ] || sleep 0.2
  done
}

fail() {
  local i=$1
  shift
  say "$(node_name "$i"): $*"
  local dir log
  dir=$(node_dir "$i")
  # What rabbitmq-server printed before its log was set up (a bad config, a port in use) comes
  # first in server.out; the log file and rabbitmqctl's output tell the rest.
  if [ -s "${dir}/server.out" ]; then
    say "--- first lines of ${dir}/server.out"
    head -n 12 "${dir}/server.out" >&2
  fi
  for log in "${dir}/ctl.log" "${dir}/log/$(node_name "$i").log"; do
    if [ -s "$log" ]; then
      say "--- last lines of ${log}"
      tail -n 15 "$log" >&2
    fi
  done
  say "stopping what was started"
  stop_all
  exit 1
}

start_all() {
  if ! "${EXEC[@]}" sh -c 'command -v rabbitmq-server && command -v rabbitmqctl' >/dev/null; then
    say "rabbitmq-server and rabbitmqctl are needed (apt-get install rabbitmq-server)"
    exit 1
  fi
  # The nodes are NAME@localhost: without localhost in the hosts file (a bare Debian root has
  # none) they cannot even start their distribution.
  if ! "${EXEC[@]}" getent hosts "$HOST" >/dev/null; then
    say "\"${HOST}\" does not resolve where the nodes run; add it to /etc/hosts there"
    exit 1
  fi
  local i
  stop_all || exit 1
  for i in "${!NODES[@]}"; do
    if port_open "$(amqp_port "$i")"; then
      say "port $(amqp_port "$i") is taken by another program"
      exit 1
    fi
  done
  write_files
  # All three boot side by side; nodes 2 and 3 join node 1 as soon as it is up (peer discovery
  # from the node list in their config). One that came up on its own anyway is joined by hand.
  say "booting $(node_name 0), $(node_name 1), $(node_name 2) in ${DIR}"
  for i in "${!NODES[@]}"; do launch "$i" || fail "$i" "rabbitmq-server did not start"; done
  wait_for_boot
  local running
  running=$(running_nodes)
  for i in 1 2; do
    grep -qx "$(node_name "$i")" <<<"$running" && continue
    say "$(node_name "$i") did not join by itself; joining it with rabbitmqctl join_cluster"
    ctl "$i" stop_app || fail "$i" "stop_app failed"
    ctl "$i" join_cluster "$(node_name 0)" || fail "$i" "join_cluster $(node_name 0) failed"
    ctl "$i" start_app || fail "$i" "start_app failed"
    ctl "$i" await_startup --timeout "$STEP_TIMEOUT" || fail "$i" "did not start after joining"
  done
  running=$(running_nodes)
  for i in "${!NODES[@]}"; do
    grep -qx "$(node_name "$i")" <<<"$running" ||
      fail "$i" "not running in the cluster of $(node_name 0) (running: ${running//$'\n'/ })"
  done
  say "cluster of 3 running; AMQP as guest/guest on 127.0.0.1:$(amqp_port 0)-$(amqp_port 2)"
  amqp_url
}

# Whether process $1 is (part of) node $2: it was started with that RABBITMQ_NODENAME.
is_node_process() {
  grep -qzx "RABBITMQ_NODENAME=$2" "/proc/$1/environ" 2>/dev/null
}

# Stops node $1 however far it got: `rabbitmqctl stop` if it answers (waiting for its process to
# end when its pid file is there), then, after 5 s, SIGKILL to what is left of its process and
# of its launcher's process group, if those processes are still that node's.
stop_node() {
  local i=$1 node dir pid_file pid waited
  node=$(node_name "$i")
  dir=$(node_dir "$i")
  if port_open "$(dist_port "$i")"; then
    if [ -s "${dir}/pid" ]; then
      timeout 60 "${EXEC[@]}" rabbitmqctl -n "$node" -q stop "${dir}/pid" >/dev/null 2>&1 || true
    else
      timeout 60 "${EXEC[@]}" rabbitmqctl -n "$node" -q stop >/dev/null 2>&1 || true
    fi
  fi
  for pid_file in "${dir}/pid" "${dir}/launcher.pid"; do
    pid=$(tr -dc 0-9 2>/dev/null <"$pid_file") || continue
    [ -n "$pid" ] || continue
    for waited in $(seq 1 50); do
      is_node_process "$pid" "$node" || continue 2
      [ "$waited" = 50 ] || sleep 0.1
    done
    say "${node} did not stop; killing process ${pid} and its group"
    kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}

stop_all() {
  local i pids=()
  for i in "${!NODES[@]}"; do
    stop_node "$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  rm -rf "$DIR"
  local left=()
  for i in "${!NODES[@]}"; do
    port_open "$(dist_port "$i")" && left+=("$(dist_port "$i") ($(node_name "$i")?)")
  done
  if [ "${#left[@]}" -gt 0 ]; then
    say "ports still in use: ${left[*]}: another program, or a node that rabbitmqctl cannot stop"
    return 1
  fi
}

status_all() {
  local i up=0
  for i in "${!NODES[@]}"; do
    if port_open "$(amqp_port "$i")"; then
      echo "$(node_name "$i"): running, amqp://127.0.0.1:$(amqp_port "$i")"
      up=$((up + 1))
    elif port_open "$(dist_port "$i")"; then
      echo "$(node_name "$i"): node up, RabbitMQ application stopped"
    else
      echo "$(node_name "$i"): down"
    fi
  done
  if [ "$up" -gt 0 ]; then
    for i in "${!NODES[@]}"; do
      port_open "$(amqp_port "$i")" || continue
      timeout "$STEP_TIMEOUT" "${EXEC[@]}" rabbitmqctl -n "$(node_name "$i")" -q cluster_status || true
      break
    done
    amqp_url
  fi
  [ "$up" = "${#NODES[@]}" ]
}

case "${1:-}" in
  start) start_all ;;
  stop)
    stop_all
    say "stopped"
    ;;
  status) status_all ;;
  *)
    echo "Usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
