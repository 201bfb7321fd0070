"""``moodstream serve``'s command line, importable without FastAPI or ROS (the ``moodstream`` runner adds it)."""

from __future__ import annotations

import argparse
import logging
import sys

DETECTORS = ("mtcnn", "haar")


def cmd_serve(args: argparse.Namespace) -> int:
    from .api import serve  # FastAPI and uvicorn only once the API is asked for

    return serve(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="a .tflite or .onnx (default: the installed models/emotion.tflite)")
    p.add_argument("--detector", choices=DETECTORS, default="mtcnn",
                   help="detector of /upload-meaa-image and the default of /v1/analyze")
    p.add_argument("--workers", type=int, default=2, help="analyses that may run at once")
    p.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024)
    p.add_argument("--max-pixels", type=int, default=25_000_000)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one analysis may take")
    p.add_argument("--queue", type=int, help="requests that may wait for a worker (default 2 x workers); more: 503")
    p.add_argument("--read-timeout", type=float, default=30.0, help="seconds a request body may stall")
    p.add_argument("--max-connections", type=int, default=64, help="open connections at most; more: 503")
    p.set_defaults(func=cmd_serve)


def add_parser(sub) -> None:
    add_arguments(sub.add_parser("serve", help="the single-image HTTP mood API"))


def main(argv: list[str] | None = None) -> int:
    """The ``moodstream_api`` executable: the same as ``moodstream serve``."""
    from moodstream_classify.model import ModelError
    from moodstream_common.environment import prepare_environment

    ap = argparse.ArgumentParser(prog="moodstream_api", description="MoodStream's single-image HTTP mood API")
    add_arguments(ap)
    args = ap.parse_args(argv)
    prepare_environment()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ModelError as err:
        print(f"moodstream_api: {err}", file=sys.stderr)
        return 2
