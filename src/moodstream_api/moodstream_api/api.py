"""``moodstream serve``: the single-image mood API.

- ``POST /upload-meaa-image``: the ALAMEDA mood-estimation route (multipart, field ``file`` or
  ``image``): the four mood probabilities and the predicted mood of the main (largest) face,
  plus MoodStream's fields for every face.
- ``POST /v1/analyze``: the same analysis; the image as multipart or as the raw body, and the
  detector to use.
- ``GET /health``, ``GET /openapi.json`` (and ``/docs``).

Images are decoded in memory and never stored or logged.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from moodstream_classify.moods import MOODS

from .analysis import AnalyzerPool, FaceAnalysis, ImageError, decode_image
from .cli import DETECTORS

log = logging.getLogger("moodstream.api")
IMAGE_FIELDS = ("file", "image")


#: The detectors a request may name (the values of ``cli.DETECTORS``).
Detector = Enum("Detector", {name: name for name in DETECTORS}, type=str)


class BoxOut(BaseModel):
    x: int = Field(description="left edge, pixels")
    y: int = Field(description="top edge, pixels")
    width: int
    height: int


class FaceOut(BaseModel):
    box: BoxOut
    detection_score: float
    label: str = Field(description="most likely of the six emotions")
    confidence: float
    emotions: dict[str, float] = Field(description="probability of each of the six emotions")
    mood: str = Field(description="most likely of positive, negative, neutral, other")
    moods: dict[str, float] = Field(description="probability of each of the four moods")


class AnalysisOut(BaseModel):
    model: str
    detector: str
    image_width: int
    image_height: int
    face_count: int
    mood: str | None = Field(description="the main (largest) face's mood; null when no face was found")
    moods: dict[str, float] | None
    faces: list[FaceOut] = Field(description="every face, largest first")


class AlamedaOut(BaseModel):
    """ALAMEDA-style answer: the main face's four mood probabilities as top-level fields."""

    predicted_mood: str | None
    positive: float | None
    negative: float | None
    neutral: float | None
    other: float | None
    face_found: bool
    model: str
    detector: str
    faces: list[FaceOut]


class HealthOut(BaseModel):
    status: str
    model: str
    labels: list[str]
    moods: list[str]
    detectors: list[str]


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "image": {"type": "string", "format": "binary"}}},
            },
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
ERRORS = {status: {"description": text} for status, text in [
    (400, "empty, truncated or malformed upload"), (408, "the request body stalled"),
    (413, "body or image too large"), (415, "not a PNG, JPEG, GIF, BMP or WebP image"),
    (422, "bad parameters or no image field"),
    (503, "busy (every worker and queue place taken) or the analysis timed out; see Retry-After")]}


def face_out(face: FaceAnalysis) -> FaceOut:
    b = face.box
    return FaceOut(box=BoxOut(x=b.x, y=b.y, width=b.width, height=b.height),
                   detection_score=face.detection_score, label=face.label, confidence=face.confidence,
                   emotions=face.emotions, mood=face.mood, moods=face.moods)


async def read_body(request: Request, max_bytes: int, read_timeout_s: float = 30.0) -> bytes:
    """The body, at most ``max_bytes``; a client that stops sending for ``read_timeout_s`` gets 408."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"request body of {declared} bytes exceeds the {max_bytes} bytes allowed")
    chunks, total = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), read_timeout_s)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:  # not yet the built-in TimeoutError on Python 3.10
            raise HTTPException(408, f"the request body stalled for {read_timeout_s:g} s") from None
        except ClientDisconnect:
            raise ClientGone from None
        total += len(chunk)
        if total > max_bytes:
            raise HTTPException(413, f"request body exceeds the {max_bytes} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


class ClientGone(Exception):  # noqa: N818
    """The client hung up mid-upload: nobody to answer, nothing to log."""


class Admission:
    """At most ``workers + queue`` requests in the house; the rest get 503 at once. A slot is
    freed when its analysis really ends, not when its request timed out, so that memory stays
    bounded by workers plus queue."""

    def __init__(self, workers: int, queue: int) -> None:
        self.capacity = workers + queue
        self._used = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self._used >= self.capacity:
                return False
            self._used += 1
            return True

    def leave(self, *_) -> None:
        with self._lock:
            self._used -= 1


def image_from_multipart(content_type: str, body: bytes) -> bytes:
    """The image part of a multipart body, parsed in memory (nothing spooled to disk)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise HTTPException(400, "malformed multipart body")
    names = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        names.append(name)
        if name in IMAGE_FIELDS:
            return part.get_payload(decode=True) or b""
    raise HTTPException(422, f"expected the image in a form field named 'file' or 'image', got {names}")


async def image_bytes(request: Request, max_bytes: int, allow_raw: bool, read_timeout_s: float = 30.0) -> bytes:
    content_type = request.headers.get("content-type", "")
    body = await read_body(request, max_bytes, read_timeout_s)
    if content_type.lower().startswith("multipart/form-data"):
        if "boundary=" not in content_type:
            raise HTTPException(400, "multipart body without a boundary")
        return image_from_multipart(content_type, body)
    if not allow_raw:
        raise HTTPException(415, "send the image as multipart/form-data in a field named 'file' or 'image'")
    return body


def create_app(model_path: str | Path, workers: int = 2, max_bytes: int = 10 * 1024 * 1024,
               max_pixels: int = 25_000_000, timeout_s: float = 10.0, default_detector: str = "mtcnn",
               queue: int | None = None, read_timeout_s: float = 30.0) -> FastAPI:
    pool = AnalyzerPool(model_path, size=workers)
    admission = Admission(workers, 2 * workers if queue is None else queue)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analysis")
    app = FastAPI(title="MoodStream mood API", version="1",
                  description="Emotions and the four-mood view (positive, negative, neutral, other) of the faces "
                              "in one image. Images are analysed in memory and never stored or logged.")

    def work(data: bytes, detector: str) -> tuple[tuple[int, int], list]:
        image = decode_image(data, max_pixels)  # off the event loop: a large image stalls no one else
        return (image.shape[1], image.shape[0]), pool.analyze(image, detector)

    async def analyze(request: Request, detector: str, allow_raw: bool) -> tuple[tuple[int, int], list]:
        if not admission.try_enter():
            raise HTTPException(503, f"busy: {admission.capacity} images are being analysed or waiting",
                                headers={"Retry-After": "1"})
        handed_over = False
        try:
            data = await image_bytes(request, max_bytes, allow_raw, read_timeout_s)
            job = asyncio.get_running_loop().run_in_executor(executor, work, data, detector)
            job.add_done_callback(admission.leave)  # the slot is the thread's until it ends
            handed_over = True
            try:
                return await asyncio.wait_for(asyncio.shield(job), timeout_s)
            except ImageError as err:
                raise HTTPException(err.status, str(err)) from None
            except asyncio.TimeoutError:  # the built-in TimeoutError from Python 3.11 on
                raise HTTPException(503, f"the analysis took longer than {timeout_s} s",
                                    headers={"Retry-After": "5"}) from None
        finally:
            if not handed_over:
                admission.leave()

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; the client is not there to read it

    @app.get("/health", response_model=HealthOut)
    def health() -> HealthOut:
        return HealthOut(status="ok", model=pool.model_id, labels=pool.labels, moods=list(MOODS),
                         detectors=pool.detectors)

    @app.post("/upload-meaa-image", response_model=AlamedaOut, openapi_extra=IMAGE_BODY, responses=ERRORS)
    async def upload_meaa_image(request: Request) -> AlamedaOut:
        """ALAMEDA-compatible: multipart upload, field ``file`` or ``image``; MTCNN detection."""
        _, faces = await analyze(request, default_detector, allow_raw=False)
        main = faces[0].moods if faces else {}
        return AlamedaOut(predicted_mood=faces[0].mood if faces else None, positive=main.get("positive"),
                          negative=main.get("negative"), neutral=main.get("neutral"), other=main.get("other"),
                          face_found=bool(faces), model=pool.model_id, detector=default_detector,
                          faces=[face_out(f) for f in faces])

    @app.post("/v1/analyze", response_model=AnalysisOut, openapi_extra=IMAGE_BODY, responses=ERRORS)
    async def analyze_v1(request: Request,
                         detector: Detector = Query(Detector(default_detector))) -> AnalysisOut:  # noqa: B008
        """Every face's emotions and moods; the image as multipart (``file`` or ``image``) or raw body."""
        (width, height), faces = await analyze(request, detector.value, allow_raw=True)
        return AnalysisOut(model=pool.model_id, detector=detector.value, image_width=width, image_height=height,
                           face_count=len(faces), mood=faces[0].mood if faces else None,
                           moods=faces[0].moods if faces else None, faces=[face_out(f) for f in faces])

    return app


def serve(args) -> int:
    """Run the API with uvicorn until interrupted (``moodstream serve``)."""
    import uvicorn

    from moodstream_classify.model import default_model_path

    app = create_app(args.model or default_model_path(), workers=args.workers, max_bytes=args.max_bytes,
                     max_pixels=args.max_pixels, timeout_s=args.timeout, default_detector=args.detector,
                     queue=args.queue, read_timeout_s=args.read_timeout)
    # limit_concurrency: connections beyond it get 503 before any body is read.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", limit_concurrency=args.max_connections,
                timeout_keep_alive=5)
    return 0
