#!/usr/bin/env bash
# Creates .venv with ROS 2 (rclpy from PyPI, no ROS install needed), builds MoodStream's
# messages into it and installs every MoodStream package. Idempotent; safe to run again.
#   scripts/setup.sh          runtime
#   scripts/setup.sh --test   runtime + test tools
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

quiet_pip() {  # pip, without the per-package notes this machine's pip config prints
  local log rc=0
  log=$(mktemp)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" > "$log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  return $rc
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.moodstream-deps"
reqs=(scripts/requirements-runtime.txt scripts/requirements-build.txt)
[ $WITH_TEST = 1 ] && reqs+=(scripts/requirements-test.txt)
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python dependencies (${reqs[*]})"
  quiet_pip $(printf -- '-r %s ' "${reqs[@]}")
  echo "$want" > "$stamp"
fi

# The ROS wheels' exported CMake files hard-code the include and site-packages folders of the
# machine they were built on; point them at this interpreter's own, or CMake refuses them.
"$VENV/bin/python" - <<'PY'
import pathlib, sys, sysconfig
paths = sysconfig.get_paths()
fixes = {
    "/opt/python/cp311-cp311/include/python3.11": paths["include"],
    "/opt/python/cp311-cp311/lib/python3.11/site-packages": paths["purelib"],
}
for cmake in pathlib.Path(sys.prefix, "share").rglob("*.cmake"):
    text = cmake.read_text(errors="surrogateescape")
    new = text
    for old, repl in fixes.items():
        new = new.replace(old, repl)
    if new != text:
        cmake.write_text(new, errors="surrogateescape")
PY

export AMENT_PREFIX_PATH=$VENV
export CMAKE_PREFIX_PATH=$VENV
msgs_stamp="$VENV/.moodstream-interfaces"
msgs_hash=$(cat src/moodstream_interfaces/CMakeLists.txt src/moodstream_interfaces/package.xml src/moodstream_interfaces/msg/*.msg | sha256sum | cut -d' ' -f1)
if [ "$(cat "$msgs_stamp" 2>/dev/null)" != "$msgs_hash" ]; then
  echo "[setup] building moodstream_interfaces"
  mkdir -p build
  cmake -S src/moodstream_interfaces -B build/moodstream_interfaces -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -Wno-dev > build/cmake-configure.log 2>&1 \
    || { cat build/cmake-configure.log; exit 1; }
  cmake --build build/moodstream_interfaces -j2 > build/cmake-build.log 2>&1 || { tail -50 build/cmake-build.log; exit 1; }
  cmake --install build/moodstream_interfaces > /dev/null
  echo "$msgs_hash" > "$msgs_stamp"
fi

# Services the tests run for real: Mosquitto (MQTT), InfluxDB 1.x, and docker-compose to
# validate docker/compose.yaml (no Docker engine is needed for that).
if [ $WITH_TEST = 1 ] && { ! command -v docker-compose > /dev/null || [ ! -x /usr/sbin/mosquitto ] \
    || ! command -v influxd > /dev/null; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "[setup] installing docker-compose, mosquitto and influxdb (Debian) for the tests"
    apt-get update -qq > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose mosquitto mosquitto-clients influxdb \
      > /dev/null
    # Debian starts the packaged services; the tests run their own on free ports.
    for service in mosquitto influxdb; do
      (command -v systemctl > /dev/null && systemctl stop "$service") > /dev/null 2>&1 || true
    done
  else
    echo "[setup] docker-compose, mosquitto or influxd is missing and this is not root: their tests will be skipped"
  fi
fi

# The ROS 2 launch/CLI stack (ros2 launch, ros2 topic/node/param, launch_testing) that a ROS
# install provides and PyPI does not: from ../shared/ros2 beside the project, where it exists.
# The tests build the workspace with colcon and launch it for real with it.
SHARED_ROS2=${MOODSTREAM_SHARED_ROS2:-$ROOT/../shared/ros2}
if [ $WITH_TEST = 1 ]; then
  if [ -x "$SHARED_ROS2/install.sh" ]; then
    ros2_stamp="$VENV/.moodstream-ros2-stack"
    ros2_hash=$( (cat "$SHARED_ROS2/install.sh" "$SHARED_ROS2/PROVENANCE.txt"; echo "$want") | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$ros2_stamp" 2>/dev/null)" != "$ros2_hash" ]; then
      echo "[setup] installing the ROS 2 launch and CLI stack from $SHARED_ROS2"
      bash "$SHARED_ROS2/install.sh" "$VENV" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
      "$VENV/bin/python" -c "import launch_ros, launch_testing" && echo "$ros2_hash" > "$ros2_stamp"
    fi
  else
    echo "[setup] $SHARED_ROS2 is missing: the launch tests will be skipped (and fail in CI)"
  fi
  # paho-mqtt 1.6, what rosdep's python3-paho-mqtt installs on Ubuntu 24.04, beside the venv's 2.x:
  # the bridge is tested against a real broker with both.
  if [ ! -f "$VENV/paho-mqtt-1.6/paho/mqtt/client.py" ]; then
    quiet_pip --target "$VENV/paho-mqtt-1.6" --no-deps 'paho-mqtt==1.6.1'
  fi
fi

# npm packages the tests use: Node-RED with the InfluxDB nodes (runs docker/node-red/flows.json),
# and Grafana's schema with TypeScript (type-checks the dashboard).
if [ $WITH_TEST = 1 ]; then
  for folder in docker/node-red docker/grafana/check; do
    if ! command -v npm > /dev/null; then
      echo "[setup] npm is missing: the tests that need $folder will be skipped"
      break
    fi
    stamp=$folder/node_modules/.moodstream-stamp
    want=$(sha256sum "$folder/package.json" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      echo "[setup] installing npm packages of $folder"
      (cd "$folder" && npm install --no-audit --no-fund --loglevel=error > /dev/null)
      echo "$want" > "$stamp"
    fi
  done
fi

echo "[setup] installing MoodStream packages"
# Not editable: `pip install -e` skips data_files (ament index markers, launch, config, model).
quiet_pip --no-deps --force-reinstall --no-build-isolation \
  ./src/moodstream_common ./src/moodstream_models ./src/moodstream_capture ./src/moodstream_detect \
  ./src/moodstream_classify ./src/moodstream_bridge ./src/moodstream_openmv ./src/moodstream_api ./src/moodstream \
  ./src/moodstream_examples
echo "[setup] done: . $VENV/bin/activate"
