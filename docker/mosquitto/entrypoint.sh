#!/bin/sh
# Writes the broker's configuration and password file from the environment, then runs it.
#   MQTT_USERNAME, MQTT_PASSWORD   required; the password at least 8 characters
#   TLS: server.crt and server.key in $MQTT_CERTS_DIR (docker/mosquitto/certs, mounted read-only)
#        add a TLS listener on 8883; with a ca.crt there too, clients may present certificates
#        signed by it. docs/dashboard.md shows how to make them.
set -eu
: "${MQTT_USERNAME:?set MQTT_USERNAME in docker/.env}"
: "${MQTT_PASSWORD:?set MQTT_PASSWORD in docker/.env}"
if [ "${#MQTT_PASSWORD}" -lt 8 ]; then
  echo "MQTT_PASSWORD is shorter than 8 characters: set a longer one in docker/.env" >&2
  exit 2
fi
template="${MQTT_TEMPLATE:-/moodstream/mosquitto.conf}"
config_dir="${MQTT_CONFIG_DIR:-/mosquitto/config}"
data_dir="${MQTT_DATA_DIR:-/mosquitto/data}"
certs_dir="${MQTT_CERTS_DIR:-/moodstream/certs}"
run_as="${MQTT_RUN_AS:-mosquitto}"
address="${MQTT_LISTEN_ADDRESS:-}"
config="$config_dir/mosquitto.conf"

mkdir -p "$config_dir" "$data_dir"
umask 077
{
  echo "# Written by entrypoint.sh at start-up; edit $template instead."
  cat "$template"
  echo "user $run_as"
  echo "password_file $config_dir/passwd"
  echo "persistence_location $data_dir/"
  echo "listener ${MQTT_LISTEN_PORT:-1883}${address:+ $address}"
} > "$config"
rm -f "$config_dir/passwd"
mosquitto_passwd -c -b "$config_dir/passwd" "$MQTT_USERNAME" "$MQTT_PASSWORD"

if [ -e "$certs_dir/server.crt" ] || [ -e "$certs_dir/server.key" ]; then
  for name in server.crt server.key; do
    if [ ! -r "$certs_dir/$name" ]; then
      echo "TLS: $certs_dir/$name is missing or unreadable (both server.crt and server.key are needed)" >&2
      exit 2
    fi
  done
  # Copies the broker's user can read (the mounted files may belong to anyone, with any mode).
  mkdir -p "$config_dir/certs"
  cp "$certs_dir/server.crt" "$certs_dir/server.key" "$config_dir/certs/"
  {
    echo "listener ${MQTTS_LISTEN_PORT:-8883}${address:+ $address}"
    echo "certfile $config_dir/certs/server.crt"
    echo "keyfile $config_dir/certs/server.key"
    echo "tls_version tlsv1.2"
  } >> "$config"
  if [ -e "$certs_dir/ca.crt" ]; then
    cp "$certs_dir/ca.crt" "$config_dir/certs/"
    echo "cafile $config_dir/certs/ca.crt" >> "$config"
  fi
  echo "TLS listener on port ${MQTTS_LISTEN_PORT:-8883}"
fi
chown -R "$run_as" "$config_dir" "$data_dir"
exec mosquitto -c "$config"
