# shellcheck shell=bash
# Shared by up.sh, down.sh and kafka/run-class.sh (sourced, not executed).
# Everything the scripts create lives in deploy/.stack/ (git-ignored).

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# MS_STACK_DIR puts a second stack's broker data, pid and log files elsewhere (the fault matrix
# runs its own broker on other ports and kills it); the Kafka jars stay shared by every stack.
STACK_DIR=${MS_STACK_DIR:-$DEPLOY_DIR/.stack}
KAFKA_POM="$DEPLOY_DIR/kafka/pom.xml"
KAFKA_HOME="$STACK_DIR/kafka"
KAFKA_LIBS="$DEPLOY_DIR/.stack/kafka/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_PID_FILE="$KAFKA_HOME/kafka.pid"
KAFKA_PROPS="$KAFKA_HOME/server.properties"
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")
REDIS_HOME="$STACK_DIR/redis"

say() { printf '[deploy] %s\n' "$*"; }
err() { printf '[deploy] ERROR: %s\n' "$*" >&2; }

# Java-free TCP probe (bash's /dev/tcp); `timeout` keeps a filtered port from hanging us.
port_open() { timeout 2 bash -c "</dev/tcp/$1/$2" 2>/dev/null; }

# Java-free "is this a Kafka broker serving requests" probe: send an ApiVersions v0 request
# (api_key 18, correlation id 7, null client id) and expect correlation id 7 + error_code 0
# back. Redis/Postgres/anything else on the port fails this, unlike a bare TCP connect.
kafka_answers() {
  local out
  out=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
      printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff" >&3 && head -c 10 <&3' \
      "$1" "$2" 2>/dev/null | od -An -tx1 | tr -d ' \n')
  [[ ${out:8:12} == 000000070000 ]]
}

# "scheme://[user[:pass]@]host[:port][/path]" -> "host port" (port defaults to $2).
url_host_port() {
  local rest=${1#*://}
  rest=${rest%%/*}; rest=${rest%%\?*}; rest=${rest##*@}
  if [[ $rest == *:* ]]; then echo "${rest%:*} ${rest##*:}"; else echo "${rest:-127.0.0.1} $2"; fi
}

# Prints the pid from $1 if that process is alive and its command line matches $2
# (guards against a stale pid file whose pid got reused by something else).
live_pid() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ && $(ps -ww -o args= -p "$pid" 2>/dev/null) =~ $2 ]] && echo "$pid"
}
kafka_pid() { live_pid "$KAFKA_PID_FILE" 'kafka\.Kafka'; }

# SIGTERM, wait up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid=$1 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= $2 * 2 )); then
      say "pid $pid still alive after $2 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null; break
    fi
    sleep 0.5; waited=$((waited + 1))
  done
}

# Populates $KAFKA_LIBS from Maven Central once. The marker holds the pom's hash, so an
# edited pom (e.g. a version bump) re-resolves, and a half-finished copy never counts.
kafka_libs_ready() {
  [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$(sha256sum "$KAFKA_POM" | cut -c1-64)" ]]
}
kafka_ensure_libs() {
  kafka_libs_ready && return 0
  command -v mvn >/dev/null || { err "mvn not found: needed once to fetch Kafka jars (apt-get install maven)"; return 1; }
  say "resolving Apache Kafka $KAFKA_VERSION jars from Maven Central into ${KAFKA_LIBS#"$DEPLOY_DIR"/} (first run only)..."
  local tmp="$KAFKA_LIBS.tmp"
  rm -rf "$tmp"; mkdir -p "$KAFKA_HOME" "${KAFKA_LIBS%/*}"
  # Output goes to a file (mvn -q still emits stray ANSI resets); shown only on failure.
  if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1 </dev/null; then
    tail -n 30 "$KAFKA_HOME/mvn.log" >&2
    err "mvn dependency:copy-dependencies failed (full log: $KAFKA_HOME/mvn.log)"; rm -rf "$tmp"; return 1
  fi
  local j
  for j in kafka_2.13 kafka-server kafka-raft kafka-metadata kafka-storage kafka-tools reload4j slf4j-reload4j; do
    compgen -G "$tmp/$j-[0-9]*.jar" >/dev/null || { err "resolved classpath lacks $j"; return 1; }
  done
  sha256sum "$KAFKA_POM" | cut -c1-64 >"$tmp/.complete"
  rm -rf "$KAFKA_LIBS"; mv "$tmp" "$KAFKA_LIBS"
}

# Runs a Kafka main class (CLI tools) on the resolved classpath, quiet logging.
kafka_run_class() {
  java -Xmx256m -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$DEPLOY_DIR/kafka/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}
