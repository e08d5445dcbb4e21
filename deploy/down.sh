#!/usr/bin/env bash
# Stops what deploy/up.sh started: the Kafka broker (and a redis-server, only if up.sh had
# to start one). Never touches services it did not start. Idempotent.
#   deploy/down.sh           stop; Kafka data (topics, offsets) is kept for the next up.sh
#   deploy/down.sh --purge   stop and delete deploy/.stack/kafka/data (fresh cluster next time)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=0
case ${1:-} in
  "") ;;
  --purge) purge=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

if pid=$(kafka_pid); then
  # SIGTERM = Kafka's clean shutdown (flushes logs, writes clean-shutdown markers, so the
  # next start skips log recovery). 30 s is ample for a single dev node.
  say "kafka: stopping broker (pid $pid)"
  stop_pid "$pid" 30
  say "kafka: stopped"
else
  say "kafka: no broker started by up.sh is running"
fi
rm -f "$KAFKA_PID_FILE" "$KAFKA_HOME/ready.pid"

if pid=$(live_pid "$REDIS_HOME/redis.pid" redis-server); then
  say "redis: stopping the redis-server up.sh started (pid $pid)"
  stop_pid "$pid" 10
fi
rm -f "$REDIS_HOME/redis.pid"

if (( purge )); then
  rm -rf "$KAFKA_DATA"
  say "kafka: purged ${KAFKA_DATA#"$DEPLOY_DIR"/}"
fi
