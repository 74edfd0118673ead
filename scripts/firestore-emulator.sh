#!/usr/bin/env bash
# Runs the Firestore emulator of the Google Cloud CLI in the background for the tests and the
# local runner.
#
#   eval "$(scripts/firestore-emulator.sh start)"   # prints: export FIRESTORE_EMULATOR_HOST=127.0.0.1:PORT
#   scripts/firestore-emulator.sh status
#   scripts/firestore-emulator.sh stop
#
# start is idempotent: if the emulator it started is still running (say a killed `make test` left
# it), it prints the same export. Callers pair it with `trap '… stop' EXIT`. The emulator jar runs
# directly under java: gcloud's wrapper is slower and, killed, leaves the JVM running. State files
# (pid, host, log) live in FARM_EMULATOR_DIR, by default .farm/ at the repository root.
set -euo pipefail

readonly MAIN_CLASS=com.google.cloud.datastore.emulator.firestore.CloudFirestore
readonly JAR=platform/cloud-firestore-emulator/cloud-firestore-emulator.jar
DIR="${FARM_EMULATOR_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.farm}"
PID_FILE="$DIR/firestore-emulator.pid"
HOST_FILE="$DIR/firestore-emulator.host"
LOG_FILE="$DIR/firestore-emulator.log"
READY_SECONDS="${FARM_EMULATOR_READY_SECONDS:-120}"

say() { printf 'firestore-emulator: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ours PID: is PID a running Firestore emulator (not a recycled pid)?
ours() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "$MAIN_CLASS"
  else
    ps -p "$1" -o args= 2>/dev/null | grep -q "$MAIN_CLASS"
  fi
}

# answers HOST: does the emulator at HOST say Ok?
answers() {
  if command -v curl >/dev/null; then
    [ "$(curl -fsS --max-time 2 "http://$1/" 2>/dev/null)" = "Ok" ]
  else
    local reply
    reply=$(exec 3<>"/dev/tcp/${1%:*}/${1##*:}" && printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3 && timeout 2 cat <&3) 2>/dev/null || return 1
    [[ "$reply" == *$'\r\n\r\nOk'* ]]
  fi
}

# free_port: a loopback port nothing listens on (the emulator's bind has the last word).
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

jar_path() {
  command -v java >/dev/null || die "java (Java 17+) is not on PATH; it runs the Firestore emulator"
  command -v gcloud >/dev/null || die "the Google Cloud CLI (gcloud) is not on PATH; it ships the Firestore emulator"
  local root
  root=$(gcloud info --format='value(installation.sdk_root)') || die "gcloud info failed"
  [ -f "$root/$JAR" ] || die "$root/$JAR is missing: install the gcloud component cloud-firestore-emulator"
  echo "$root/$JAR"
}

running() {
  local pid host
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  host=$(cat "$HOST_FILE" 2>/dev/null) || return 1
  ours "$pid" && answers "$host" && echo "$host"
}

# launch JAR: start one emulator; prints its host once it answers, fails if it dies first.
launch() {
  local port host pid
  port=$(free_port)
  host="127.0.0.1:$port"
  # stdin/stdout detached: `eval "$(… start)"` must not wait for the JVM's output to end.
  java -cp "$1" "$MAIN_CLASS" start --host=127.0.0.1 --port="$port" </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  for _ in $(seq $((READY_SECONDS * 5))); do
    if answers "$host"; then
      echo "$host" >"$HOST_FILE"
      echo "$host"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; return 1; }
    sleep 0.2
  done
  say "no answer from $host after ${READY_SECONDS}s; stopping it"
  stop_pid "$pid"
  rm -f "$PID_FILE"
  return 2
}

start() {
  local host jar code
  mkdir -p "$DIR"
  if host=$(running); then
    say "already running on $host"
  else
    jar=$(jar_path)
    host=""
    for attempt in 1 2 3; do
      code=0
      host=$(launch "$jar") && break || code=$?
      [ "$code" -eq 1 ] || break # exited early (port taken?) is worth another try; a hang is not
      say "attempt $attempt exited early: $(tail -n 3 "$LOG_FILE" 2>/dev/null | tr '\n' ' ')"
      host=""
    done
    [ -n "$host" ] || die "could not start the emulator; see $LOG_FILE"
    say "started on $host (pid $(cat "$PID_FILE"), log $LOG_FILE)"
  fi
  echo "export FIRESTORE_EMULATOR_HOST=$host"
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$1" 2>/dev/null || true
}

stop() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null || true)
  if ours "$pid"; then
    stop_pid "$pid"
    say "stopped (pid $pid)"
  else
    say "not running"
  fi
  rm -f "$PID_FILE" "$HOST_FILE"
}

status() {
  local host
  if host=$(running); then
    echo "running on $host (pid $(cat "$PID_FILE"))"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
