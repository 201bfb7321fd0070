"""``moodstream``: run the pipeline in one process, a demo, the benchmark, or the model evaluation.

    moodstream demo
    moodstream run --source webcam 0 --display
    moodstream run --source video clip.mp4 --once --duration 30
    moodstream run --source topic /camera/image_raw
    moodstream run --params my_params.yaml -p detect.downscale=0.5
    moodstream bench
    moodstream evaluate --split PublicTest
    moodstream serve --port 8000
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from pathlib import Path

from .params import ConfigError, Overrides, coerce, load_params_file, merge, parse_assignments

SOURCE_HELP = "synthetic | webcam [DEVICE] | video PATH | images DIR | topic NAME | openmv [PORT]"


def source_overrides(tokens: list[str]) -> tuple[Overrides, str | None]:
    """``--source`` tokens -> node parameters, and the image topic to read in 'topic' mode.

    With ``openmv`` the returned parameters are the OpenMV host node's (and no camera node runs).
    """
    kind, args = tokens[0], tokens[1:]
    if len(args) > 1:
        raise ConfigError(f"--source {kind} takes at most one argument, got {' '.join(args)}")
    if kind == "topic":
        if not args:
            raise ConfigError("--source topic needs the image topic, e.g. --source topic /camera/image_raw")
        return {}, args[0]
    if kind == "openmv":
        return {"openmv": {"port": args[0] if args else "/dev/ttyACM0"}}, None
    if kind in ("video", "images"):
        if not args:
            raise ConfigError(f"--source {kind} needs a path")
        if not Path(args[0]).exists():
            raise ConfigError(f"--source {kind}: {args[0]} does not exist")
        return {"capture": {"source": kind, "path": args[0]}}, None
    if kind == "webcam":
        return {"capture": {"source": kind, "device": args[0] if args else "0"}}, None
    if kind == "synthetic":
        return {"capture": {"source": kind}}, None
    raise ConfigError(f"unknown source {kind!r}: {SOURCE_HELP}")


def positive_seconds(text: str) -> float:
    """A finite, positive number of seconds (argparse refuses anything else with its message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_pipeline_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--params", type=Path, help="ROS 2 parameters YAML file (same as the launch file's)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                    help="set one parameter, e.g. -p detect.downscale=0.5 (repeatable)")
    ap.add_argument("--namespace", default="", help="namespace of every node and topic")
    ap.add_argument("--fps", type=float, help="capture.fps")
    ap.add_argument("--width", type=int, help="capture.width")
    ap.add_argument("--height", type=int, help="capture.height")
    ap.add_argument("--once", action="store_true", help="play a video or image folder once (capture.loop=false)")
    ap.add_argument("--detector", help="detect.detector")
    ap.add_argument("--model", help="classify.model_path")
    ap.add_argument("--duration", type=positive_seconds, help="stop after this many seconds")
    ap.add_argument("--history", action="store_true",
                    help="record the local mood history on disk (bridge.history=always; off by default)")
    ap.add_argument("--consent", action="store_true",
                    help="with policy.require_consent: the people in view have agreed (else you are asked, or "
                         "the consent service waits for it)")
    add_bridge_args(ap)


def add_bridge_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--mqtt", metavar="mqtt[s]://HOST:PORT", help="relay emotions to this broker (bridge.mqtt_url)")
    ap.add_argument("--mqtt-credentials", metavar="FILE",
                    help="'user:password' file (else $MOODSTREAM_MQTT_USERNAME / _PASSWORD; never on the command line)")
    ap.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate of an mqtts:// broker (bridge.mqtt_ca_file)")
    ap.add_argument("--influx", metavar="http://HOST:8086", help="write emotions to InfluxDB (bridge.influx_url)")
    ap.add_argument("--influx-api", choices=("v1", "v2"), help="bridge.influx_api (default v1)")
    ap.add_argument("--influx-credentials", metavar="FILE",
                    help="v1 'user:password' or v2 token file (else $MOODSTREAM_INFLUX_USERNAME / _PASSWORD / _TOKEN)")
    ap.add_argument("--robot-id", help="bridge.robot_id (default: the host name)")
    ap.add_argument("--camera-id", help="bridge.camera_id")


def flag_overrides(args: argparse.Namespace, bridge_only: bool = False) -> Overrides:
    if bridge_only:
        flags = {("bridge", k): getattr(args, a) for k, a in (
            ("mqtt_url", "mqtt"), ("mqtt_credentials_file", "mqtt_credentials"), ("mqtt_ca_file", "mqtt_ca"),
            ("influx_url", "influx"), ("influx_api", "influx_api"), ("influx_credentials_file", "influx_credentials"),
            ("robot_id", "robot_id"), ("camera_id", "camera_id"))}
        return {"bridge": {k[1]: v for k, v in flags.items() if v is not None}}
    flags = {
        ("capture", "fps"): args.fps, ("capture", "width"): args.width, ("capture", "height"): args.height,
        ("capture", "loop"): False if args.once else None, ("detect", "detector"): args.detector,
        ("classify", "model_path"): args.model, ("bridge", "mqtt_url"): args.mqtt,
        ("bridge", "mqtt_credentials_file"): args.mqtt_credentials, ("bridge", "mqtt_ca_file"): args.mqtt_ca,
        ("bridge", "robot_id"): args.robot_id, ("bridge", "camera_id"): args.camera_id,
        ("bridge", "influx_url"): args.influx, ("bridge", "influx_api"): args.influx_api,
        ("bridge", "influx_credentials_file"): args.influx_credentials,
        ("bridge", "history"): "always" if args.history else None,
    }
    out: Overrides = {}
    for (node, name), value in flags.items():
        if value is not None:
            out.setdefault(node, {})[name] = value
    return out


def build_overrides(args: argparse.Namespace, source: list[str]) -> tuple[Overrides, str | None]:
    src, topic = source_overrides(source)
    layers = [load_params_file(args.params)] if args.params else []
    layers += [src, flag_overrides(args), parse_assignments(args.param)]
    merged = merge(*layers)
    return {n: {k: coerce(n, k, v) for k, v in p.items()} for n, p in merged.items()}, topic


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import Pipeline

    overrides, topic = build_overrides(args, args.source)
    display = None
    stop = {"requested": False}
    if args.display:
        import cv2

        def display(image) -> None:
            try:
                cv2.imshow("MoodStream", image)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    stop["requested"] = True
            except cv2.error as err:
                raise SystemExit(
                    "--display needs an OpenCV build with GUI support (pip install opencv-python "
                    f"instead of opencv-python-headless): {err}"
                ) from None

    def on_stop_signal(signum, frame) -> None:
        # While frames run, Ctrl-C or SIGTERM ends the run loop at its next turn, so the summary
        # counts every frame; a KeyboardInterrupt could land anywhere (in rclpy, mid-callback).
        # Before (loading the model, the consent prompt), it cuts that short.
        if not stop.get("running"):
            raise KeyboardInterrupt
        stop["requested"] = True

    for sig in (signal.SIGINT, signal.SIGTERM):  # before rclpy.init, so rclpy's own handler chains to it
        signal.signal(sig, on_stop_signal)
    # The bridge always runs: it relays to --mqtt / --influx, and records the history with --history.
    pipeline = Pipeline(overrides, image_topic=topic, openmv=args.source[0] == "openmv", bridge=True,
                        namespace=args.namespace, console_sink=print, want_images=args.display, on_image=display,
                        consent=args.consent)
    host = pipeline.consent_host
    if host is not None and not host.granted:
        if sys.stdin.isatty():
            answer = input("policy.require_consent: have the people in view agreed to emotion recognition? [y/N] ")
            if answer.strip().lower() in ("y", "yes"):
                pipeline.give_consent("the runner's prompt")
        if not host.granted:
            print(f"waiting for consent, the camera closed: ros2 service call {host.service.srv_name} "
                  "std_srvs/srv/SetBool \"{data: true}\"", flush=True)
    stop["running"] = True
    try:
        summary = pipeline.run(args.duration, should_stop=lambda: stop["requested"])
    finally:
        pipeline.close()
    producer = pipeline.openmv or pipeline.classify
    if producer is not None and producer.aggregate_only:
        print(f"{summary.summaries} aggregate windows of {producer.params['policy.aggregate_window_s']:g} s "
              "(policy.aggregate_only: no per-person output)")
    else:
        print(f"{summary.frames} frames, {summary.faces} faces, {len(summary.track_ids)} tracks, "
              f"{summary.fps:.1f} frames/s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import cv2

    from .runner import Pipeline

    overrides = merge(
        {"capture": {"source": "synthetic", "synthetic_faces": args.faces, "fps": 30.0,
                     "max_frames": int(args.duration * 30)}},
        {"classify": {"annotate": "always"}},
        {"bridge": {"history": "never"}},  # the demo's synthetic faces stay out of your mood history
        flag_overrides(args, bridge_only=True),
    )
    print(f"MoodStream demo: {args.duration:.0f} s of a synthetic camera showing {args.faces} real face(s) "
          "(a public-domain NASA photograph), through detect -> classify in one process.")
    pipeline = Pipeline(overrides, console_sink=print, want_images=True, bridge=bool(args.mqtt or args.influx))
    try:
        summary = pipeline.run(args.duration + 5)
        best = pipeline.observer.best_image
    finally:
        pipeline.close()
    print(f"\n{summary.frames} frames classified at {summary.fps:.1f} frames/s; a face in "
          f"{summary.frames_with_faces} of them; {len(summary.track_ids)} track(s).")
    total = sum(summary.primary_labels.values())
    for label, count in summary.primary_labels.most_common():
        print(f"  {label:10s} {count / total:6.1%} of frames (primary face, smoothed)")
    if best is None:
        print("no annotated frame was produced", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), best)
    print(f"annotated frame written to {args.out}")
    return 0 if summary.frames_with_faces else 1


def cmd_params(args: argparse.Namespace) -> int:
    from .params import markdown_reference, node_specs

    if args.markdown:
        sys.stdout.write(markdown_reference())
        return 0
    for node, specs in node_specs().items():
        for name, spec in specs.items():
            sys.stdout.write(f"{node}.{name} = {spec.default!r}  ({spec.allowed()}; "
                             f"{'restart' if spec.read_only else 'live'}) {spec.description}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="moodstream", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline in one process")
    run.add_argument("--source", nargs="+", default=["synthetic"], metavar="KIND", help=SOURCE_HELP)
    run.add_argument("--display", action="store_true", help="show an OpenCV window with boxes and labels")
    add_pipeline_args(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="a bounded run on the synthetic source; writes an annotated PNG")
    demo.add_argument("--duration", type=positive_seconds, default=6.0)
    demo.add_argument("--faces", type=int, default=2, choices=(1, 2))
    demo.add_argument("--out", type=Path, default=Path("moodstream-demo.png"))
    add_bridge_args(demo)
    demo.set_defaults(func=cmd_demo)

    from . import audit_cli, bench, bench_graph, calibrate, evaluate, history_cli

    params = sub.add_parser("params", help="every node's parameters: default, allowed values, live or restart")
    params.add_argument("--markdown", action="store_true", help="as the Markdown of docs/parameters.md")
    params.set_defaults(func=cmd_params)

    bench.add_parser(sub)
    bench_graph.add_parser(sub)
    evaluate.add_parser(sub)
    calibrate.add_parser(sub)
    history_cli.add_parser(sub)
    audit_cli.add_parser(sub)
    try:  # the HTTP API is a package of its own, which a robot may leave out
        from moodstream_api.cli import add_parser as add_serve_parser
    except ImportError:
        serve = sub.add_parser("serve", help="the single-image HTTP mood API (needs the moodstream_api package)")
        serve.set_defaults(func=lambda _args: missing_api())
    else:
        add_serve_parser(sub)
    return ap


def missing_api() -> int:
    print("moodstream: serve needs the moodstream_api package (src/moodstream_api; in a ROS workspace, "
          "build it with colcon and install its dependencies with rosdep)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from moodstream_common.environment import choose_dds_profile, prepare_environment

    prepare_environment()
    choose_dds_profile()  # the runner, like the launch file, picks the DDS settings; the user's win
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from moodstream_bridge.influx_writer import InfluxConfigError
    from moodstream_bridge.mqtt_relay import MqttConfigError
    from moodstream_capture.sources import SourceError
    from moodstream_classify.model import ModelError
    from moodstream_common.ros import ParameterError
    from moodstream_detect.detectors import DetectorError

    try:
        return args.func(args)
    except (ConfigError, ParameterError, ModelError, SourceError, DetectorError, MqttConfigError,
            InfluxConfigError) as err:
        print(f"moodstream: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:  # a credentials, parameters or data file named on the command line
        # OSError's own (strerror, filename), or the message of one raised with a sentence (a missing dataset)
        print(f"moodstream: {err.strerror}: {err.filename}" if err.filename else f"moodstream: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
