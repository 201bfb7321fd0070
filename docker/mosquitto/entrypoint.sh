#!/bin/sh
# Writes the password file from the environment, then runs the broker.
set -eu
: "${MQTT_USERNAME:?set MQTT_USERNAME in docker/.env}"
: "${MQTT_PASSWORD:?set MQTT_PASSWORD in docker/.env}"
cp /moodstream/mosquitto.conf /mosquitto/config/mosquitto.conf
mosquitto_passwd -c -b /mosquitto/config/passwd "$MQTT_USERNAME" "$MQTT_PASSWORD"
chown mosquitto:mosquitto /mosquitto/config/passwd
chmod 0700 /mosquitto/config/passwd
exec mosquitto -c /mosquitto/config/mosquitto.conf
