"""Speak a recorded WAV to a Wyoming speech-to-text server and report what it heard.

The health check's Wyoming path (beside the deepspeech command line and the Hermes ASR over MQTT):
what Home Assistant does — ``describe``, then ``transcribe``, ``audio-start``, the WAV in chunks,
``audio-stop`` — with the ``wyoming`` library's own TCP client. Prints one JSON object:
{"path": "wyoming", "transcript", "latency_s" (audio-stop to transcript), "seconds" (first chunk to
transcript), "audio_s", "rtf" (seconds / audio_s), "chunks" (transcript-chunk events), "model"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import wave
from typing import Any, Dict, List, Optional

EXIT_ERROR, EXIT_TIMEOUT, EXIT_CONNECT, EXIT_USAGE = 2, 3, 4, 64


class CheckError(Exception):
    """A failed check: the message says what happened; code is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def read_wav(path: str) -> Dict[str, Any]:
    try:
        with wave.open(path, "rb") as source:
            return {"rate": source.getframerate(), "width": source.getsampwidth(),
                    "channels": source.getnchannels(), "data": source.readframes(source.getnframes())}
    except (OSError, EOFError, wave.Error) as error:
        raise CheckError("cannot read the recording {}: {}".format(path, error), EXIT_USAGE)


async def transcribe(host: str, port: int, audio: Dict[str, Any], chunk_ms: int = 100,
                     language: str = "de") -> Dict[str, Any]:
    """Send `audio` ({rate, width, channels, data}) as one utterance; the answer and its timings."""
    from wyoming.asr import Transcribe, Transcript, TranscriptChunk
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.info import Describe, Info

    rate, width, channels = audio["rate"], audio["width"], audio["channels"]
    step = max(1, rate * chunk_ms // 1000) * width * channels
    data: bytes = audio["data"]
    chunks: List[str] = []
    try:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Describe().event())
            described = await client.read_event()
            if described is None or not Info.is_type(described.type):
                raise CheckError("the server did not answer describe with info", EXIT_ERROR)
            info = Info.from_event(described)
            model = info.asr[0].models[0].name if info.asr and info.asr[0].models else ""
            await client.write_event(Transcribe(language=language).event())
            started = time.monotonic()
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            for start in range(0, len(data), step):
                await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                    audio=data[start:start + step]).event())
            await client.write_event(AudioStop().event())
            stopped = time.monotonic()
            while True:
                event = await client.read_event()
                if event is None:
                    raise CheckError("the server closed the connection before the transcript", EXIT_ERROR)
                if Error.is_type(event.type):
                    raise CheckError("the server answered: " + Error.from_event(event).text, EXIT_ERROR)
                if TranscriptChunk.is_type(event.type):
                    chunks.append(TranscriptChunk.from_event(event).text)
                if Transcript.is_type(event.type):
                    text = Transcript.from_event(event).text
                    break
    except OSError as error:
        raise CheckError("cannot talk to the Wyoming server at {}:{}: {}".format(host, port, error), EXIT_CONNECT)
    done = time.monotonic()
    audio_s = len(data) / float(rate * width * channels)
    return {"path": "wyoming", "transcript": text, "latency_s": round(done - stopped, 4),
            "seconds": round(done - started, 4), "audio_s": round(audio_s, 4),
            "rtf": round((done - started) / audio_s, 4) if audio_s else None, "chunks": chunks, "model": model}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-wyoming-check", description=__doc__.split("\n")[0])
    parser.add_argument("--wav", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10300)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--language", default="de")
    args = parser.parse_args(argv)
    try:
        audio = read_wav(args.wav)
        try:
            result = asyncio.run(asyncio.wait_for(
                transcribe(args.host, args.port, audio, language=args.language), args.timeout))
        except asyncio.TimeoutError:
            raise CheckError("no transcript from {}:{} within {:g} s".format(args.host, args.port, args.timeout),
                             EXIT_TIMEOUT)
    except CheckError as error:
        print("voice-wyoming-check: {}".format(error), file=sys.stderr)
        return error.code
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
