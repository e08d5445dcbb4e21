#!/usr/bin/env bash
# Runs a Kafka CLI main class on the classpath deploy/up.sh resolved. Examples:
#   deploy/kafka/run-class.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 \
#       --create --topic usage-events --partitions 3 --replication-factor 1
#   deploy/kafka/run-class.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#   deploy/kafka/run-class.sh kafka.tools.ConsoleProducer --bootstrap-server 127.0.0.1:9092 --topic t
#   deploy/kafka/run-class.sh org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server 127.0.0.1:9092 \
#       --topic t --from-beginning --max-messages 1
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
[[ $# -ge 1 ]] || { sed -n '2,9p' "$0"; exit 2; }
kafka_ensure_libs
kafka_run_class "$@"
