"""Sources and sinks on PyAV/FFmpeg: files, image sequences, RTSP/HTTP, a synthetic scene."""

from veil.media.sink import StreamSpec, StreamTemplate, VideoSink, open_sink
from veil.media.source import AudioChunk, DecodeReport, VideoSource, open_source

__all__ = [
    "AudioChunk",
    "DecodeReport",
    "StreamSpec",
    "StreamTemplate",
    "VideoSink",
    "VideoSource",
    "open_sink",
    "open_source",
]
