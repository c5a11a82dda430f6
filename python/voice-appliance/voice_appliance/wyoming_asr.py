"""Wyoming speech-to-text server over the appliance's DeepSpeech 0.7.4 model (Home Assistant's Assist).

Protocol (the ``wyoming`` library's events): ``describe`` -> ``info`` (an ``asr`` program "deepspeech"
with the installed model); ``transcribe`` -> ``audio-start`` -> ``audio-chunk``... -> ``audio-stop`` ->
``transcript-start``/``transcript-chunk``.../``transcript-stop`` (the stream's intermediate decodes)
and always the final ``transcript``. Any PCM rate, width (8/16/24/32-bit) and channel count is
converted to 16 kHz mono 16-bit; what cannot be converted gets an ``error`` event naming the value.

One model in memory, every library call on one worker thread (the TFLite interpreter of a 0.7.4
model is shared by its streams). An utterance's audio is fed in batches beside the reading of its
events: the chunks that arrive while a library call runs go together into the next one, and the
last audio and the final decode are one call (a hop to the worker thread per batch, not per chunk).
The model is opened through the ``current`` link and the generated scorer (else the base scorer);
when either changed since it was loaded, the next utterance waits for the running ones to finish
and loads the new files: no connection is dropped. A client that breaks the framing, sends a
header or payload beyond the limits, or stays silent mid-utterance gets an ``error`` and is
disconnected; nothing a client sends names a file (no path from a client to the filesystem but its
audio).
"""
from __future__ import annotations

import argparse
import array
import asyncio
import concurrent.futures
import json
import logging
import math
import os
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncTcpServer

LOG = logging.getLogger("voice-wyoming-asr")
TARGET_RATE = 16000
SUPPORTED_WIDTHS = (1, 2, 3, 4)
MIN_RATE, MAX_RATE, MAX_CHANNELS = 4000, 192000, 16
EXIT_USAGE = 2


# --- Audio conversion (stdlib only: audioop is gone in Python 3.13) ---------------------------------

class AudioFormatError(ValueError):
    """Audio the server cannot convert; the message names the value and what is accepted."""


def check_format(rate: Any, width: Any, channels: Any) -> Tuple[int, int, int]:
    """The format as ints, or AudioFormatError naming the bad value."""
    for name, value in (("rate", rate), ("width", width), ("channels", channels)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AudioFormatError("audio {} {!r} is not an integer".format(name, value))
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError("audio rate {} Hz is not supported: send {}..{} Hz (16000 is native)".format(
            rate, MIN_RATE, MAX_RATE))
    if width not in SUPPORTED_WIDTHS:
        raise AudioFormatError("audio width {} bytes is not supported: send 1, 2, 3 or 4 bytes per sample "
                               "(signed little-endian PCM; 1 = unsigned 8-bit)".format(width))
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError("audio channels {} is not supported: send 1..{} channels".format(
            channels, MAX_CHANNELS))
    return rate, width, channels


def _to_int16(data: "bytes | memoryview", width: int) -> "array.array[int]":
    """Little-endian PCM samples of `width` bytes as 16-bit samples (the top 16 bits)."""
    if width == 2:
        samples = array.array("h")
        samples.frombytes(data)
        if sys.byteorder == "big":
            samples.byteswap()
        return samples
    if width == 1:  # unsigned 8-bit (WAV convention)
        return array.array("h", ((byte - 128) << 8 for byte in data))
    if width == 4:
        wide = array.array("i")
        wide.frombytes(data)
        if sys.byteorder == "big":
            wide.byteswap()
        return array.array("h", (value >> 16 for value in wide))
    # width 3: the two upper bytes of each little-endian 24-bit sample
    view = memoryview(data)
    return array.array("h", (int.from_bytes(view[i + 1:i + 3], "little", signed=True)
                             for i in range(0, len(data), 3)))


class AudioConverter:
    """Streaming conversion of PCM chunks to 16 kHz mono 16-bit (linear interpolation, stateful).

    16 kHz mono 16-bit input on a little-endian host (what Home Assistant sends) is appended to the
    utterance's samples as it is: one copy, no per-sample Python."""

    def __init__(self, rate: int, width: int, channels: int) -> None:
        self.rate, self.width, self.channels = check_format(rate, width, channels)
        self.frame_bytes = width * channels
        self.native = (rate, width, channels) == (TARGET_RATE, 2, 1) and sys.byteorder == "little"
        self._rest = b""  # bytes of a frame split across chunks
        self._step = rate / float(TARGET_RATE)  # input samples per output sample
        self._pos = 0.0  # next output position, in input samples from the start of _tail
        self._tail: List[int] = []  # the last input sample (interpolation across chunks)

    def same_format(self, rate: Any, width: Any, channels: Any) -> bool:
        return (rate, width, channels) == (self.rate, self.width, self.channels)

    def convert(self, data: bytes) -> bytes:
        """The chunk as 16 kHz mono 16-bit little-endian bytes."""
        out = array.array("h")
        self.convert_into(data, out)
        if sys.byteorder == "big":
            out.byteswap()
        return out.tobytes()

    def convert_into(self, data: bytes, out: "array.array[int]") -> int:
        """Append the chunk's samples (16 kHz mono, native byte order) to `out`; how many were added."""
        before = len(out)
        if self._rest:
            data = self._rest + data
        usable = len(data) - len(data) % self.frame_bytes
        self._rest = bytes(data[usable:]) if usable < len(data) else b""
        if not usable:
            return 0
        if self.native:
            out.frombytes(memoryview(data)[:usable] if usable < len(data) else data)
            return len(out) - before
        samples = _to_int16(memoryview(data)[:usable], self.width)
        if self.channels > 1:
            channels = self.channels
            columns = [samples[c::channels] for c in range(channels)]
            if channels == 2:
                samples = array.array("h", [(left + right) >> 1 for left, right in zip(*columns)])
            else:
                samples = array.array("h", [sum(frame) // channels for frame in zip(*columns)])
        if self.rate == TARGET_RATE:
            out.extend(samples)
        else:
            self._resample(samples, out)
        return len(out) - before

    def _resample(self, samples: "array.array[int]", out: "array.array[int]") -> None:
        source = self._tail + samples.tolist()
        if not source:
            return
        last = len(source) - 1
        pos, step = self._pos, self._step
        count = max(0, int(math.ceil((last - pos) / step)))
        while count and pos + (count - 1) * step >= last:  # float rounding at the edge
            count -= 1
        positions = [pos + i * step for i in range(count)]
        lows = list(map(int, positions))
        out.extend(array.array("h", [int(a + (b - a) * (p - i)) for a, b, p, i in
                                     zip(map(source.__getitem__, lows), map(source.__getitem__, [i + 1 for i in lows]),
                                         positions, lows)]))
        self._pos = pos + count * step - last
        self._tail = [source[last]]


# --- The model: one in memory, reloaded between utterances when its files changed --------------------

def file_identity(path: str) -> Optional[Tuple[str, int, int, int, int]]:
    """Where a path resolves to and that file's identity, or None if it does not exist."""
    try:
        real = os.path.realpath(path)
        info = os.stat(real)
    except OSError:
        return None
    return real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class ModelHolder:
    """The loaded DeepSpeech model and scorer; every library call runs on one worker thread."""

    def __init__(self, model: str, base_scorer: str = "", generated_scorer: str = "", beam_width: int = 0,
                 lm_alpha: Optional[float] = None, lm_beta: Optional[float] = None,
                 library: Any = None) -> None:
        self.model_path, self.base_scorer, self.generated_scorer = model, base_scorer, generated_scorer
        self.beam_width, self.lm_alpha, self.lm_beta = beam_width, lm_alpha, lm_beta
        if library is None:
            import deepspeech as library  # the appliance's venv: official wheel or the compat binding
        self.library = library
        self.worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepspeech")
        self.model: Any = None
        self.loaded: Tuple[Any, ...] = ()
        self.scorer_in_use = ""
        self.active = 0
        self.reloads = 0
        self._idle: Optional[asyncio.Condition] = None

    def scorer_path(self) -> str:
        """The generated scorer if there is one, else the base scorer ("" = none)."""
        if self.generated_scorer and os.path.isfile(self.generated_scorer):
            return self.generated_scorer
        return self.base_scorer if self.base_scorer and os.path.isfile(self.base_scorer) else ""

    def wanted(self) -> Tuple[Any, ...]:
        scorer = self.scorer_path()
        return (file_identity(self.model_path), scorer, file_identity(scorer) if scorer else None)

    def _load(self, wanted: Tuple[Any, ...]) -> None:
        """Worker thread: load the model and scorer named by `wanted`; the old one stays on failure."""
        model = self.library.Model(self.model_path)
        if self.beam_width:
            model.setBeamWidth(self.beam_width)
        scorer = wanted[1]
        if scorer:
            model.enableExternalScorer(scorer)
            if self.lm_alpha is not None and self.lm_beta is not None:
                model.setScorerAlphaBeta(self.lm_alpha, self.lm_beta)
        if model.sampleRate() != TARGET_RATE:
            raise RuntimeError("the model wants {} Hz audio; this server converts to {} Hz".format(
                model.sampleRate(), TARGET_RATE))
        old, self.model = self.model, model
        self.loaded, self.scorer_in_use = wanted, scorer
        del old  # the previous model is freed here: one model in memory
        self.reloads += 1

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, function, *args)

    async def load(self) -> None:
        """The first load (a failure here stops the server with the reason)."""
        wanted = self.wanted()
        if wanted[0] is None:
            raise FileNotFoundError("the model {} does not exist".format(self.model_path))
        await self.call(self._load, wanted)
        LOG.info("loaded %s (scorer: %s)", wanted[0][0], self.scorer_in_use or "none")

    async def acquire(self) -> Any:
        """The model for a new utterance (counted as running until release()); first the model and
        scorer anew if their files changed. The utterance creates its stream on the worker thread."""
        if self._idle is None:
            self._idle = asyncio.Condition()
        async with self._idle:
            wanted = self.wanted()
            if wanted != self.loaded and wanted[0] is not None:
                # The running utterances finish with the files they started with.
                await self._idle.wait_for(lambda: self.active == 0)
                wanted = self.wanted()
                if wanted != self.loaded and wanted[0] is not None:
                    try:
                        await self.call(self._load, wanted)
                        LOG.info("reloaded %s (scorer: %s)", wanted[0][0], self.scorer_in_use or "none")
                    except Exception as error:  # a broken new file: keep serving with the loaded one
                        LOG.error("kept the loaded model: loading %s with scorer %s failed: %s",
                                  wanted[0][0], wanted[1] or "none", error)
                        self.loaded = wanted
            self.active += 1
            return self.model

    async def open_stream(self) -> Any:
        """acquire() and a stream of that model (one more worker hop)."""
        model = await self.acquire()
        try:
            return await self.call(model.createStream)
        except BaseException:
            await self.release()
            raise

    async def release(self) -> None:
        assert self._idle is not None
        async with self._idle:
            self.active -= 1
            self._idle.notify_all()


# --- The Wyoming handler --------------------------------------------------------------------------

class Limits:
    """What one client may send."""

    def __init__(self, max_line: int = 8192, max_data: int = 65536, max_payload: int = 1 << 20,
                 max_seconds: float = 60.0, idle_timeout: float = 30.0, max_sessions: int = 3,
                 intermediate_every: float = 0.5) -> None:
        self.max_line, self.max_data, self.max_payload = max_line, max_data, max_payload
        self.max_seconds, self.idle_timeout, self.max_sessions = max_seconds, idle_timeout, max_sessions
        self.intermediate_every = intermediate_every


class ProtocolError(Exception):
    """The client broke the framing: answer with an error and disconnect."""


class Server:
    """Shared state of every connection: the model, the limits, the session slots, the description."""

    def __init__(self, holder: ModelHolder, limits: Limits, info: Info, streaming: bool = True) -> None:
        self.holder, self.limits, self.info, self.streaming = holder, limits, info, streaming
        self.sessions = 0
        self.served = 0


async def read_event(reader: asyncio.StreamReader, limits: Limits) -> Optional[Event]:
    """One Wyoming event within the limits (None at a clean end); ProtocolError for bad framing."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None
        raise ProtocolError("the connection ended inside an event header")
    except asyncio.LimitOverrunError:
        raise ProtocolError("event header longer than {} bytes".format(limits.max_line))
    if len(line) > limits.max_line:
        raise ProtocolError("event header longer than {} bytes".format(limits.max_line))
    try:
        header = json.loads(line)
    except ValueError:
        raise ProtocolError("an event header is not JSON (Wyoming sends one JSON object per line)")
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("an event header has no string 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("event {!r}: 'data' is not an object".format(header["type"]))
    sizes = {}
    for key, limit in (("data_length", limits.max_data), ("payload_length", limits.max_payload)):
        value = header.get(key)
        if value is None:
            value = 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError("event {!r}: {} {!r} is not a size".format(header["type"], key, value))
        if value > limit:
            raise ProtocolError("event {!r}: {} {} is above the limit of {} bytes".format(
                header["type"], key, value, limit))
        sizes[key] = value
    try:
        if sizes["data_length"]:
            extra = json.loads(await reader.readexactly(sizes["data_length"]))
            if not isinstance(extra, dict):
                raise ProtocolError("event {!r}: its data is not a JSON object".format(header["type"]))
            data = dict(data, **extra)
        payload = await reader.readexactly(sizes["payload_length"]) if sizes["payload_length"] else None
    except asyncio.IncompleteReadError:
        raise ProtocolError("the connection ended inside event {!r}".format(header["type"]))
    except ValueError:
        raise ProtocolError("event {!r}: its data is not JSON".format(header["type"]))
    return Event(type=header["type"], data=data, payload=payload)


class Session:
    """One utterance: its converter, the audio not yet given to the library, the stream and its
    streaming state.

    The audio goes to the library in batches: a chunk that arrives while a library call runs waits
    in ``pending`` and goes with every other such chunk into the next call (one worker-thread hop
    per batch, not per chunk). A client that sends in real time gets each chunk fed at once; one
    that sends faster than the decoder gets fewer, larger calls. The stream itself is created in the
    first call and the final decode is made in the same call as the last audio."""

    def __init__(self, model: Any, converter: AudioConverter, intermediate_every: int = 0) -> None:
        self.model, self.converter = model, converter
        self.stream: Any = None  # created on the worker thread by the first call
        self.pending = array.array("h")  # converted samples (native byte order) not yet fed
        self.samples = 0  # samples accepted for this utterance
        self.fed = 0  # samples given to the library
        self.every = intermediate_every  # samples between intermediate decodes (0: none)
        self.next_mark = intermediate_every
        self.feeder: "Optional[asyncio.Task[None]]" = None
        self.failure: Optional[BaseException] = None
        self.sent_text = ""
        self.started = False
        self.began = time.monotonic()
        self.chunks = 0
        self.calls = 0  # library calls (worker-thread hops) of this utterance
        self.library_s = 0.0  # time spent inside the library: the server's own decode time
        self.final_s = 0.0  # of which the final decode (finishStream)

    def take(self) -> "array.array[int]":
        audio, self.pending = self.pending, array.array("h")
        return audio

    def work(self, audio: "array.array[int]", finish: bool) -> Tuple[Optional[str], Optional[str]]:
        """Worker thread: feed `audio`; the intermediate decode at the last streaming mark (every
        `every` samples of the utterance) it passes; with `finish` the final decode, which frees the
        stream. (intermediate text or None, final text or None)"""
        started = time.perf_counter()
        try:
            if self.stream is None:
                self.stream = self.model.createStream()
            intermediate = None
            end = self.fed + len(audio)
            if self.every and end >= self.next_mark:
                mark = self.next_mark + (end - self.next_mark) // self.every * self.every
                self.next_mark = mark + self.every
                head = mark - self.fed
                self.stream.feedAudioContent(audio[:head] if head < len(audio) else audio)
                intermediate = self.stream.intermediateDecode()
                if head < len(audio):
                    self.stream.feedAudioContent(audio[head:])
            elif audio:
                self.stream.feedAudioContent(audio)
            self.fed = end
            final = None
            if finish:
                final_started = time.perf_counter()
                stream, self.stream = self.stream, None
                final = stream.finishStream()
                self.final_s = time.perf_counter() - final_started
            return intermediate, final
        finally:
            self.library_s += time.perf_counter() - started
            self.calls += 1

    def close(self) -> None:
        """Worker thread: free the stream of an utterance that ends without a transcript (the only
        worker thread runs this after any call still running for the utterance)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.freeStream()


class AsrHandler(AsyncEventHandler):
    """One client connection."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.session: Optional[Session] = None
        self.language: Optional[str] = None
        self.refused = False  # audio of a refused utterance is dropped until its audio-stop
        self._writing = asyncio.Lock()  # the feeder task and the event handling both write
        peer = writer.get_extra_info("peername")
        self.peer = "{}:{}".format(*peer[:2]) if isinstance(peer, tuple) else str(peer)

    async def write_event(self, event: Event) -> None:
        async with self._writing:  # whole events, one after the other (and one drain at a time)
            await super().write_event(event)

    async def run(self) -> None:
        limits = self.server.limits
        try:
            while True:
                timeout = limits.idle_timeout if self.session is not None else None
                try:
                    event = await asyncio.wait_for(read_event(self.reader, limits), timeout)
                except asyncio.TimeoutError:
                    await self.error("no audio for {:g} s inside an utterance: closing the connection".format(
                        limits.idle_timeout), "timeout")
                    break
                except ProtocolError as error:
                    LOG.warning("%s: %s", self.peer, error)
                    await self.error(str(error) + ": closing the connection", "protocol")
                    break
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, OSError) as error:
            LOG.info("%s: connection lost: %s", self.peer, error)
        finally:
            await self.disconnect()
            self.writer.close()

    async def disconnect(self) -> None:
        await self.end_session()

    async def error(self, text: str, code: str) -> None:
        try:
            await self.write_event(Error(text=text, code=code).event())
        except (ConnectionError, OSError):
            pass

    async def end_session(self) -> None:
        """Drop the running utterance (no transcript): its feeding stops, its stream is freed."""
        session, self.session = self.session, None
        if session is None:
            return
        holder = self.server.holder
        try:
            feeder = session.feeder
            if feeder is not None and not feeder.done():
                feeder.cancel()  # a library call already running finishes on the worker thread
                await asyncio.wait([feeder])
            try:
                await holder.call(session.close)
            except Exception:  # already finished
                pass
        finally:
            await holder.release()
            self.server.sessions -= 1

    async def handle_event(self, event: Event) -> bool:
        if AudioChunk.is_type(event.type):  # the most frequent event first
            await self.chunk(event)
        elif Describe.is_type(event.type):
            await self.write_event(self.server.info.event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            self.language = Transcribe.from_event(event).language
        elif AudioStart.is_type(event.type):
            await self.start(event)
        elif AudioStop.is_type(event.type):
            await self.stop()
        else:
            LOG.debug("%s: ignored event %s", self.peer, event.type)
        return True

    async def start(self, event: Event) -> None:
        await self.end_session()
        self.refused = False
        try:
            converter = AudioConverter(event.data.get("rate"), event.data.get("width"), event.data.get("channels"))
        except AudioFormatError as error:
            self.refused = True
            await self.error(str(error), "audio-format")
            return
        server = self.server
        if server.sessions >= server.limits.max_sessions:
            self.refused = True
            await self.error("busy: {} utterances are being transcribed (the limit); try again in a moment".format(
                server.sessions), "busy")
            return
        server.sessions += 1
        try:
            model = await server.holder.acquire()
        except BaseException:
            server.sessions -= 1
            raise
        every = int(server.limits.intermediate_every * TARGET_RATE) if server.streaming else 0
        self.session = Session(model, converter, max(0, every))

    async def chunk(self, event: Event) -> None:
        session = self.session
        if session is None:
            if not self.refused:
                self.refused = True
                await self.error("audio-chunk without audio-start: send transcribe, audio-start, the chunks, "
                                 "audio-stop", "protocol")
            return
        if not session.converter.same_format(event.data.get("rate"), event.data.get("width"),
                                             event.data.get("channels")):
            await self.refuse("audio-chunk format {}/{}/{} differs from audio-start's {}/{}/{} (rate/width/channels)"
                              .format(event.data.get("rate"), event.data.get("width"), event.data.get("channels"),
                                      session.converter.rate, session.converter.width, session.converter.channels),
                              "audio-format")
            return
        if session.failure is not None:
            await self.refuse(self.failed(session), "decoder")
            return
        added = session.converter.convert_into(event.payload or b"", session.pending)
        limits = self.server.limits
        if session.samples + added > limits.max_seconds * TARGET_RATE:
            await self.refuse("the utterance is longer than {:g} s: end it with audio-stop sooner".format(
                limits.max_seconds), "too-long")
            return
        session.samples += added
        session.chunks += 1
        if session.pending and (session.feeder is None or session.feeder.done()):
            session.feeder = asyncio.get_running_loop().create_task(self.feed(session))

    async def feed(self, session: Session) -> None:
        """The feeder task of an utterance: hands the pending audio to the library until none is
        left, beside the reading of further events; sends what the intermediate decodes added."""
        holder = self.server.holder
        try:
            while session.pending and self.session is session:
                intermediate, _ = await holder.call(session.work, session.take(), False)
                if intermediate is not None:
                    await self.stream_text(session, intermediate)
        except (ConnectionError, OSError):
            pass  # the client is gone: the reading side notices and ends the utterance
        except Exception as error:  # the library refused: the utterance gets an error
            session.failure = error

    def failed(self, session: Session) -> str:
        LOG.error("%s: the decoder failed: %r", self.peer, session.failure)
        return "the decoder failed on this utterance: {}".format(session.failure)

    async def stream_text(self, session: Session, text: str) -> None:
        """Send what the intermediate decode added (words are only appended, never revised)."""
        if not session.started:
            session.started = True
            await self.write_event(TranscriptStart(language=self.language or "de").event())
        if text.startswith(session.sent_text) and len(text) > len(session.sent_text):
            new = text[len(session.sent_text):]
            # Only whole words: the last word may still grow.
            cut = new.rfind(" ")
            if cut > 0 or (cut == 0 and len(new) > 1):
                piece = new[:cut + 1] if cut > 0 else new[:1]
                session.sent_text += piece
                await self.write_event(TranscriptChunk(text=piece).event())

    async def refuse(self, text: str, code: str) -> None:
        await self.end_session()
        self.refused = True
        await self.error(text, code)

    async def stop(self) -> None:
        session = self.session
        if session is None:
            if not self.refused:
                await self.error("audio-stop without audio-start", "protocol")
            self.refused = False
            return
        holder = self.server.holder
        if session.feeder is not None and not session.feeder.done():
            await asyncio.wait([session.feeder])
        intermediate: Optional[str] = None
        text: Optional[str] = None
        if session.failure is None:
            try:  # the rest of the audio and the final decode: one library call
                intermediate, text = await holder.call(session.work, session.take(), True)
            except Exception as error:
                session.failure = error
        if session.failure is not None:
            await self.end_session()
            await self.error(self.failed(session), "decoder")
            return
        assert text is not None
        self.session = None
        await holder.release()
        self.server.sessions -= 1
        self.server.served += 1
        LOG.info("%s: %.2f s of audio in %d chunks -> %r (library %.4f s in %d calls, final decode %.4f s; "
                 "audio-start to transcript %.4f s)", self.peer, session.samples / TARGET_RATE, session.chunks, text,
                 session.library_s, session.calls, session.final_s, time.monotonic() - session.began)
        if self.server.streaming:
            if intermediate is not None:
                await self.stream_text(session, intermediate)
            if not session.started:
                await self.write_event(TranscriptStart(language=self.language or "de").event())
            if text.startswith(session.sent_text) and len(text) > len(session.sent_text):
                await self.write_event(TranscriptChunk(text=text[len(session.sent_text):]).event())
            await self.write_event(TranscriptStop().event())
        await self.write_event(Transcript(text=text, language=self.language or "de").event())


# --- Description, zeroconf, command line -----------------------------------------------------------

def model_description(model: str, name: str = "", version: str = "") -> Tuple[str, str]:
    """Name and version of the model: given, or from its versioned directory NAME-VERSION-HASH."""
    directory = os.path.basename(os.path.dirname(os.path.realpath(model)))
    parts = directory.split("-")
    if not name:
        name = "-".join(parts[:-2]) if len(parts) >= 3 else directory or os.path.basename(model)
    if not version:
        version = parts[-2] if len(parts) >= 3 else ""
    return name, version


def build_info(model: str, library_version: str, name: str = "", version: str = "",
               attribution_name: str = "", attribution_url: str = "", streaming: bool = True) -> Info:
    model_name, model_version = model_description(model, name, version)
    asr_model = AsrModel(
        name=model_name, description="DeepSpeech {} German model {}".format(library_version, model_name),
        attribution=Attribution(name=attribution_name or "Aashish Agarwal (AASHISHAG/deepspeech-german)",
                                url=attribution_url or "https://github.com/AASHISHAG/deepspeech-german"),
        installed=True, languages=["de"], version=model_version or None)
    program = AsrProgram(
        name="deepspeech", description="Mozilla DeepSpeech {} (offline voice appliance)".format(library_version),
        attribution=Attribution(name="Mozilla", url="https://github.com/mozilla/DeepSpeech"),
        installed=True, version=library_version, models=[asr_model], supports_transcript_streaming=streaming)
    return Info(asr=[program])


def zeroconf_record(name: str, port: int, address: str) -> Dict[str, Any]:
    """The service record announced for Home Assistant (built with the zeroconf library, not sent)."""
    from zeroconf import ServiceInfo

    info = ServiceInfo("_wyoming._tcp.local.", "{}._wyoming._tcp.local.".format(name),
                       addresses=[socket.inet_aton(address)], port=port, server="{}.local.".format(name))
    return {"type": info.type, "name": info.name, "server": info.server, "port": info.port,
            "addresses": [socket.inet_ntoa(a) for a in info.addresses]}


def announce_address(bind: str, address: str) -> str:
    """The IPv4 address to announce: given, the bind address, or the one of the default route."""
    if address:
        return address
    if bind not in ("", "0.0.0.0", "::"):
        return socket.gethostbyname(bind)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # connect() on UDP only picks the route; nothing is sent
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


async def start_zeroconf(name: str, port: int, address: str) -> Any:
    """Register the service on the interface of `address` only (None and a log line if it fails)."""
    try:
        from zeroconf import ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf
        zc = AsyncZeroconf(interfaces=[address])
        info = ServiceInfo("_wyoming._tcp.local.", "{}._wyoming._tcp.local.".format(name),
                           addresses=[socket.inet_aton(address)], port=port, server="{}.local.".format(name))
        await asyncio.wait_for(zc.async_register_service(info), 30)
    except Exception as error:  # no zeroconf, no multicast on the interface: serve anyway
        LOG.warning("zeroconf announcement on %s failed (Home Assistant can still add %s:%d by hand): %r",
                    address, address, port, error)
        return None
    LOG.info("announced %s._wyoming._tcp.local. at %s:%d", name, address, port)
    return zc


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voice-wyoming-asr", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the model graph (through the `current` link)")
    parser.add_argument("--scorer", default="", help="the model's base scorer (used when there is no generated one)")
    parser.add_argument("--generated-scorer", default="", help="the scorer voice-retrain writes (preferred)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=10300, help="TCP port (0: any free one)")
    parser.add_argument("--beam-width", type=int, default=0)
    parser.add_argument("--lm-alpha", type=float)
    parser.add_argument("--lm-beta", type=float)
    parser.add_argument("--max-sessions", type=int, default=3, help="utterances transcribed at once")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest utterance")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="silence allowed inside an utterance")
    parser.add_argument("--max-payload", type=int, default=1 << 20, help="largest audio chunk (bytes)")
    parser.add_argument("--no-streaming", action="store_true", help="send only the final transcript")
    parser.add_argument("--model-name", default="")
    parser.add_argument("--model-version", default="")
    parser.add_argument("--attribution-name", default="")
    parser.add_argument("--attribution-url", default="")
    parser.add_argument("--zeroconf", default="", metavar="NAME", help="announce the service under NAME")
    parser.add_argument("--zeroconf-address", default="", help="IPv4 address (interface) to announce on")
    parser.add_argument("--print-zeroconf-record", action="store_true",
                        help="print the record --zeroconf would announce (JSON) and exit without sending")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    for name in ("port", "max_sessions", "max_payload"):
        if getattr(args, name) < (0 if name == "port" else 1) or (name == "port" and args.port > 65535):
            parser.error("--{} {} is out of range".format(name.replace("_", "-"), getattr(args, name)))
    return args


async def serve(args: argparse.Namespace, ready: Optional[Callable[[int], None]] = None) -> None:
    holder = ModelHolder(args.model, args.scorer, args.generated_scorer, args.beam_width, args.lm_alpha, args.lm_beta)
    await holder.load()
    streaming = not args.no_streaming
    info = build_info(args.model, str(holder.library.version()), args.model_name, args.model_version,
                      args.attribution_name, args.attribution_url, streaming)
    limits = Limits(max_payload=args.max_payload, max_seconds=args.max_seconds, idle_timeout=args.idle_timeout,
                    max_sessions=args.max_sessions)
    server = Server(holder, limits, info, streaming)
    tcp = AsyncTcpServer(args.host, args.port)
    await tcp.start(lambda reader, writer: AsrHandler(server, reader, writer))
    sockets = tcp._server.sockets if tcp._server is not None else []
    port = sockets[0].getsockname()[1] if sockets else args.port
    LOG.info("listening on %s:%d", args.host, port)
    zc = await start_zeroconf(args.zeroconf, port, announce_address(args.host, args.zeroconf_address)) \
        if args.zeroconf else None
    if ready is not None:
        ready(port)
    try:
        assert tcp._server is not None
        await tcp._server.serve_forever()
    finally:
        if zc is not None:
            await zc.async_close()
        await tcp.stop()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.print_zeroconf_record:
        name = args.zeroconf or socket.gethostname()
        print(json.dumps(zeroconf_record(name, args.port, announce_address(args.host, args.zeroconf_address))))
        return 0
    for label, path in (("--model", args.model), ("--scorer", args.scorer)):
        if path and not os.path.isfile(path):
            print("voice-wyoming-asr: {} {} does not exist".format(label, path), file=sys.stderr)
            return EXIT_USAGE

    def ready(port: int) -> None:
        print("READY {}".format(port), flush=True)

    try:
        asyncio.run(serve(args, ready))
    except KeyboardInterrupt:
        return 0
    except OSError as error:
        print("voice-wyoming-asr: cannot listen on {}:{}: {}".format(args.host, args.port, error), file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
