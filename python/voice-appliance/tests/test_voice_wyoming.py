"""The Wyoming speech-to-text server (voice-wyoming-asr) as Home Assistant uses it: a real server
process on 127.0.0.1 with the fixture model and the official libdeepspeech 0.7.4 (through the
project's ``deepspeech`` binding), spoken to with the ``wyoming`` library's own async TCP client.
"""
from __future__ import annotations

import array
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

wyoming = pytest.importorskip("wyoming", reason="needs the wyoming package (requirements.txt)")

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.error import Error  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402

from voice_appliance import retrain, scorer, wyoming_asr  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
FIXTURE = Path(os.environ.get("PI_VOICE_FIXTURE_DIR") or REPO / "files" / "fixture")
COMPAT = REPO / "python" / "deepspeech-compat"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "manifest.json").is_file() or not (COMPAT / "deepspeech").is_dir(),
    reason="needs the fixture model (files/fixture) and python/deepspeech-compat")

SENTENCES = "[Test]\n(das ist | ist das) ein test\n\n[Licht]\nschalte das (licht | radio) (an | aus | ein)\n"


@pytest.fixture(scope="module")
def official_library() -> str:
    sys.path.insert(0, str(COMPAT / "tests"))
    import dscompat_support as support  # the project's sha256-checked wheel fetcher

    return support.extract_library(support.fetch_artifact(*support.FLAVOUR_WHEELS["tflite"]))


@pytest.fixture(scope="module")
def fixture_files() -> Dict[str, Any]:
    manifest = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    with wave.open(str(FIXTURE / manifest["test_wav"]["file"]), "rb") as source:
        assert (source.getframerate(), source.getsampwidth(), source.getnchannels()) == (16000, 2, 1)
        pcm = source.readframes(source.getnframes())
    return {"model": str(FIXTURE / manifest["model"]["tflite"]), "alphabet": str(FIXTURE / manifest["model"]["alphabet"]),
            "wav": str(FIXTURE / manifest["test_wav"]["file"]), "pcm": pcm,
            "transcript": manifest["test_wav"]["transcript"]}


class RunningServer:
    def __init__(self, proc: "subprocess.Popen[str]", port: int, generated: Path) -> None:
        self.proc, self.port, self.generated = proc, port, generated

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(tmp: Path, library: str, model: str, *extra: str) -> RunningServer:
    """voice-wyoming-asr in its own process on 127.0.0.1 and a free port (READY <port> on stdout)."""
    models = tmp / "models"
    version_dir = models / "fixture_model-1-abc123"
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, version_dir / "output_graph.tflite")
    if not (models / "current").exists():
        (models / "current").symlink_to("fixture_model-1-abc123")
    generated = tmp / "state" / "generated.scorer"
    generated.parent.mkdir(exist_ok=True)
    env = dict(os.environ, DEEPSPEECH_LIBRARY=library,
               PYTHONPATH=os.pathsep.join([str(COMPAT), str(PACKAGE_ROOT)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_appliance.wyoming_asr", "--model", str(models / "current" / "output_graph.tflite"),
         "--generated-scorer", str(generated), "--host", "127.0.0.1", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=open(tmp / "server.log", "w"), universal_newlines=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError("the server did not start: " + (tmp / "server.log").read_text())
    return RunningServer(proc, int(line.split()[1]), generated)


@pytest.fixture
def server(tmp_path: Path, official_library: str, fixture_files: Dict[str, Any]) -> Iterator[RunningServer]:
    running = start_server(tmp_path, official_library, fixture_files["model"], "--max-sessions", "5",
                           "--idle-timeout", "20")
    yield running
    assert running.alive(), "the server died: " + (tmp_path / "server.log").read_text()
    running.proc.terminate()
    running.proc.wait(10)


async def utterance(port: int, pcm: bytes, rate: int = 16000, width: int = 2, channels: int = 1,
                    chunk_ms: int = 100) -> List[Event]:
    """One Home Assistant style utterance; every event the server sent back, the transcript last."""
    step = rate * chunk_ms // 1000 * width * channels
    events: List[Event] = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="de").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for start in range(0, len(pcm), step):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=pcm[start:start + step]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            assert event is not None, "connection closed before the transcript: {}".format(events)
            events.append(event)
            if Transcript.is_type(event.type) or Error.is_type(event.type):
                return events


def utterance_when_free(port: int, pcm: bytes) -> List[Event]:
    """An utterance, retried while the server says busy: a client that left gives its slot back as
    soon as the server has seen it leave (within a few seconds)."""
    for _ in range(50):
        events = asyncio.run(utterance(port, pcm))
        if not (Error.is_type(events[-1].type) and Error.from_event(events[-1]).code == "busy"):
            return events
        time.sleep(0.1)
    return events


def heard(events: List[Event]) -> str:
    assert Transcript.is_type(events[-1].type), events[-1]
    return Transcript.from_event(events[-1]).text


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
        assert event is not None and Info.is_type(event.type)
        return Info.from_event(event)


def test_describe_names_the_deepspeech_program_and_the_german_model(server):
    info = asyncio.run(describe(server.port))
    program = info.asr[0]
    assert program.name == "deepspeech" and program.version == "0.7.4" and program.supports_transcript_streaming
    model = program.models[0]
    assert (model.name, model.version, model.languages) == ("fixture_model", "1", ["de"])
    assert "deepspeech-german" in model.attribution.url


def test_the_recorded_wav_is_transcribed(server, fixture_files):
    assert heard(asyncio.run(utterance(server.port, fixture_files["pcm"]))) == fixture_files["transcript"]


def upsample_stereo_44k(pcm: bytes) -> bytes:
    """16 kHz mono -> 44.1 kHz stereo (linear interpolation; the right channel at half level)."""
    src = array.array("h")
    src.frombytes(pcm)
    out = array.array("h")
    step = 16000 / 44100.0
    pos = 0.0
    while pos < len(src) - 1:
        i = int(pos)
        value = int(src[i] + (src[i + 1] - src[i]) * (pos - i))
        out.extend((value, value // 2))
        pos += step
    return out.tobytes()


def test_44k_stereo_is_converted(server, fixture_files):
    stereo = upsample_stereo_44k(fixture_files["pcm"])
    assert heard(asyncio.run(utterance(server.port, stereo, rate=44100, channels=2))) == fixture_files["transcript"]


def test_32bit_and_8khz_audio_is_converted(server, fixture_files):
    """Other widths and rates through the same converter (24-bit too: a chunk may split a frame)."""
    src = array.array("h")
    src.frombytes(fixture_files["pcm"])
    wide = array.array("i", (s << 16 for s in src)).tobytes()
    assert heard(asyncio.run(utterance(server.port, wide, width=4))) == fixture_files["transcript"]
    packed = b"".join((s << 8).to_bytes(3, "little", signed=True) for s in src)
    assert heard(asyncio.run(utterance(server.port, packed, width=3, chunk_ms=33))) == fixture_files["transcript"]


def test_streaming_chunks_arrive_before_the_final_transcript(server, fixture_files):
    events = asyncio.run(utterance(server.port, fixture_files["pcm"]))
    types = [event.type for event in events]
    assert types[0] == TranscriptStart().event().type, types
    chunks = [TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type)]
    assert len(chunks) >= 2, types  # at least one from an intermediate decode, before audio-stop's
    assert types[-2:] == [TranscriptStop().event().type, "transcript"], types
    assert "".join(chunks) == heard(events) == fixture_files["transcript"]


def test_five_clients_at_once(server, fixture_files):
    async def five() -> List[List[Event]]:
        return await asyncio.gather(*(utterance(server.port, fixture_files["pcm"]) for _ in range(5)))

    results = asyncio.run(five())
    assert [heard(events) for events in results] == [fixture_files["transcript"]] * 5


def test_a_full_server_says_busy_and_keeps_serving(tmp_path, official_library, fixture_files):
    running = start_server(tmp_path, official_library, fixture_files["model"], "--max-sessions", "1")
    try:
        async def two() -> List[Any]:
            async with AsyncTcpClient("127.0.0.1", running.port) as first:
                await first.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                await first.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=b"\0" * 3200).event())
                await asyncio.sleep(0.5)
                second = await utterance(running.port, fixture_files["pcm"])
            return second

        second = asyncio.run(two())
        assert Error.is_type(second[-1].type) and Error.from_event(second[-1]).code == "busy"
        assert "busy" in Error.from_event(second[-1]).text
        assert heard(utterance_when_free(running.port, fixture_files["pcm"])) == fixture_files["transcript"]
    finally:
        assert running.alive()
        running.proc.terminate()
        running.proc.wait(10)


@pytest.mark.fault
def test_a_client_disconnecting_mid_audio_leaves_the_server_serving(server, fixture_files):
    async def vanish() -> None:
        client = AsyncTcpClient("127.0.0.1", server.port)
        await client.connect()
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=fixture_files["pcm"][:16000]).event())
        await client.disconnect()

    for _ in range(6):  # more than the session limit: every abandoned session is given back
        asyncio.run(vanish())
    assert heard(utterance_when_free(server.port, fixture_files["pcm"])) == fixture_files["transcript"]


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                received += piece
        except socket.timeout:
            raise AssertionError("the server neither answered nor closed within 10 s: {!r}".format(received[:300]))
        except ConnectionResetError:  # closed with our unread bytes pending: a closed connection too
            pass
    return received


def error_events(answer: bytes) -> List[Dict[str, Any]]:
    headers = [json.loads(line) for line in answer.split(b"\n") if line.startswith(b"{")]
    return [h for h in headers if h.get("type") == "error"]


@pytest.mark.bad_input
@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe garbage that is not json\n",
    b"[1, 2, 3]\n",
    b'{"type": "audio-chunk", "payload_length": "many"}\n',
    b'{"type": "audio-chunk", "data_length": -5}\n',
    b"x" * 200000,  # a header line without an end
], ids=["binary", "not-an-object", "bad-payload-length", "negative-data-length", "endless-header"])
def test_garbage_gets_an_error_and_the_server_lives(server, fixture_files, garbage):
    answer = raw_exchange(server.port, garbage)
    assert answer == b"" or error_events(answer), answer[:300]
    assert server.alive()
    assert heard(asyncio.run(utterance(server.port, fixture_files["pcm"]))) == fixture_files["transcript"]


@pytest.mark.bad_input
def test_an_oversize_payload_header_is_refused_without_reading_it(server, fixture_files):
    header = json.dumps({"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
                         "payload_length": 50 * 1024 ** 3}).encode() + b"\n"
    started = time.monotonic()
    answer = raw_exchange(server.port, header + b"\0" * 1000)
    assert time.monotonic() - started < 5  # closed at once, not waiting for 50 GiB
    errors = error_events(answer)
    assert errors, answer
    data = json.loads(answer.split(b"\n", 1)[1][:errors[0]["data_length"]])
    assert "payload_length 53687091200 is above the limit" in data["text"]
    assert heard(asyncio.run(utterance(server.port, fixture_files["pcm"]))) == fixture_files["transcript"]


def test_unconvertible_audio_gets_an_error_naming_the_value(server, fixture_files):
    events = asyncio.run(utterance(server.port, fixture_files["pcm"][:3200], rate=16000, width=5))
    error = Error.from_event(events[-1])
    assert error.code == "audio-format" and "width 5 bytes is not supported" in error.text
    events = asyncio.run(utterance(server.port, fixture_files["pcm"][:3200], rate=1000000))
    assert "rate 1000000 Hz is not supported" in Error.from_event(events[-1]).text


def restricted_scorer(tmp: Path, alphabet: str, kenlm_bin: Path) -> Path:
    """A scorer whose vocabulary lacks "test" (decoding can then only say fest/text)."""
    lm_dir = tmp / "lm"
    lm_dir.mkdir()
    text = "das ist ein fest\nist das ein text\n"
    (lm_dir / "vocab.txt").write_text(text, encoding="utf-8")
    (lm_dir / "corpus.txt").write_text(text, encoding="utf-8")
    subprocess.run([str(kenlm_bin / "lmplz"), "-o", "2", "-S", "64M", "-T", str(lm_dir), "--discount_fallback",
                    "--text", str(lm_dir / "corpus.txt"), "--arpa", str(lm_dir / "lm.arpa")],
                   check=True, stderr=subprocess.DEVNULL)
    subprocess.run([str(kenlm_bin / "build_binary"), "-a", "255", "-q", "8", "-v", "trie", str(lm_dir / "lm.arpa"),
                    str(lm_dir / "lm.binary")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = tmp / "restricted.scorer"
    scorer.package(alphabet, lm_dir / "lm.binary", lm_dir / "vocab.txt", target, 0.93, 1.18)
    return target


def test_a_retrain_swaps_the_scorer_and_the_next_transcript_uses_it(server, fixture_files, tmp_path, kenlm_bin,
                                                                    official_library, monkeypatch):
    async def session() -> None:
        async with AsyncTcpClient("127.0.0.1", server.port) as client:  # one connection throughout
            async def say() -> str:
                await client.write_event(Transcribe().event())
                await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                pcm = fixture_files["pcm"]
                for start in range(0, len(pcm), 3200):
                    await client.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                                        audio=pcm[start:start + 3200]).event())
                await client.write_event(AudioStop().event())
                while True:
                    event = await asyncio.wait_for(client.read_event(), 60)
                    assert event is not None
                    if Transcript.is_type(event.type):
                        return Transcript.from_event(event).text

            assert await say() == fixture_files["transcript"]  # no scorer yet: the model alone
            # A scorer without the word "test" replaces the generated one (rename, as voice-retrain does).
            restricted = restricted_scorer(tmp_path, fixture_files["alphabet"], kenlm_bin)
            os.replace(str(restricted), str(server.generated))
            words = (await say()).split()
            assert words and set(words) <= {"das", "ist", "ein", "fest", "text"} and "test" not in words, words
            # voice-retrain with the sentences: the next transcript is right again, on the same connection.
            monkeypatch.setenv("DEEPSPEECH_LIBRARY", official_library)
            monkeypatch.setenv("PYTHONPATH", str(COMPAT))
            config = retrain.load_config(None, {
                "sentences": [str(write(tmp_path / "sentences.ini", SENTENCES))], "alphabet": fixture_files["alphabet"],
                "model": fixture_files["model"], "output_scorer": str(server.generated), "kenlm_bin_dir": str(kenlm_bin),
                "verify_audio": fixture_files["wav"], "verify_transcript": fixture_files["transcript"],
                "verify_command": [sys.executable, "-m", "deepspeech", "--model", "{model}", "--scorer", "{scorer}",
                                   "--audio", "{audio}"]})
            assert retrain.run(config, log=lambda m: None)["changed"] is True
            assert await say() == fixture_files["transcript"]

    asyncio.run(session())
    log = (server.generated.parent.parent / "server.log").read_text()
    assert log.count("reloaded") == 2, log


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_model_switch_is_picked_up_between_utterances(server, fixture_files, tmp_path):
    """`current` moved to another version directory (a model switch or rollback): reloaded by the next utterance."""
    models = tmp_path / "models"
    (models / "fixture_model-2-def456").mkdir()
    shutil.copy(fixture_files["model"], models / "fixture_model-2-def456" / "output_graph.tflite")
    (models / "current.new").symlink_to("fixture_model-2-def456")
    os.replace(str(models / "current.new"), str(models / "current"))
    assert heard(asyncio.run(utterance(server.port, fixture_files["pcm"]))) == fixture_files["transcript"]
    assert "reloaded {}".format(models / "fixture_model-2-def456" / "output_graph.tflite") in \
        (tmp_path / "server.log").read_text()


# --- The converter alone -------------------------------------------------------------------------

def test_converter_splits_frames_across_chunks_and_keeps_the_rate():
    converter = wyoming_asr.AudioConverter(48000, 2, 2)
    samples = array.array("h", [1000, -1000] * 48000).tobytes()  # 1 s of stereo that averages to 0
    out = b"".join(converter.convert(samples[i:i + 777]) for i in range(0, len(samples), 777))
    assert abs(len(out) // 2 - 16000) <= 1
    assert set(array.array("h", out)) == {0}


@pytest.mark.parametrize("fmt,message", [
    ((16000, 2, 0), "channels 0"), ((16000, 7, 1), "width 7"), ((100, 2, 1), "rate 100 Hz"),
    (("16000", 2, 1), "rate '16000' is not an integer"), ((None, 2, 1), "rate None")])
def test_converter_names_what_it_cannot_convert(fmt, message):
    with pytest.raises(wyoming_asr.AudioFormatError, match=message.replace("'", ".")):
        wyoming_asr.AudioConverter(*fmt)


def test_model_description_from_the_versioned_directory(tmp_path):
    assert wyoming_asr.model_description("/opt/voice-appliance/models/german_model-0.7.4-0a1b2c/output_graph.tflite") \
        == ("german_model", "0.7.4")
    assert wyoming_asr.model_description("/x/y/output_graph.tflite", "mine", "2") == ("mine", "2")


def test_the_check_client_reports_wer_inputs(server, fixture_files, capsys):
    from voice_appliance import wyoming_check

    assert wyoming_check.main(["--wav", fixture_files["wav"], "--port", str(server.port)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["transcript"] == fixture_files["transcript"] and result["path"] == "wyoming"
    assert result["rtf"] > 0 and result["audio_s"] == pytest.approx(len(fixture_files["pcm"]) / 32000, abs=0.01)
    assert wyoming_check.main(["--wav", fixture_files["wav"], "--port", "1"]) == wyoming_check.EXIT_CONNECT


def test_the_zeroconf_announcement_resolves_on_loopback(tmp_path, official_library, fixture_files):
    """Announced on the loopback interface only (never a real one): Home Assistant's lookup of
    _wyoming._tcp.local. finds the server's address and port."""
    zeroconf = pytest.importorskip("zeroconf", reason="needs the zeroconf package (requirements.txt; Debian's on the Pi)")
    running = start_server(tmp_path, official_library, fixture_files["model"], "--zeroconf", "pytest-wyoming",
                           "--zeroconf-address", "127.0.0.1")
    try:
        browser = zeroconf.Zeroconf(interfaces=["127.0.0.1"])
        try:
            info = browser.get_service_info("_wyoming._tcp.local.", "pytest-wyoming._wyoming._tcp.local.", timeout=5000)
        finally:
            browser.close()
        assert info is not None, (tmp_path / "server.log").read_text()
        assert (info.port, info.parsed_addresses()) == (running.port, ["127.0.0.1"])
    finally:
        running.proc.terminate()
        running.proc.wait(10)
    record = subprocess.run([sys.executable, "-m", "voice_appliance.wyoming_asr", "--model", "unused", "--zeroconf", "pi",
                             "--zeroconf-address", "127.0.0.1", "--print-zeroconf-record"], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True, env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)))
    assert json.loads(record.stdout) == {"type": "_wyoming._tcp.local.", "name": "pi._wyoming._tcp.local.",
                                         "server": "pi.local.", "port": 10300, "addresses": ["127.0.0.1"]}


# --- Batching, in-process with a stand-in library (what the server hands to the library, and when) --

class FakeStream:
    """Records every call in the library's order; a feed can be held until the test lets it go."""

    def __init__(self, library: "FakeLibrary") -> None:
        self.library = library
        self.fed = array.array("h")

    def feedAudioContent(self, audio: Any) -> None:
        assert isinstance(audio, array.array) and audio.typecode == "h", type(audio)  # no bytes round trip
        self.library.log.append(("feed", len(audio)))
        if self.library.fail_feed:
            raise RuntimeError("stand-in failure")
        self.library.gate.wait(30)
        self.fed.extend(audio)

    def text(self) -> str:
        return " ".join("wort{}".format(i) for i in range(len(self.fed) // 8000))

    def intermediateDecode(self) -> str:
        self.library.log.append(("intermediate", len(self.fed)))
        return self.text()

    def finishStream(self) -> str:
        self.library.log.append(("finish", len(self.fed)))
        self.library.finished.append(self.fed.tobytes())
        return self.text()

    def freeStream(self) -> None:
        self.library.log.append(("free", len(self.fed)))


class FakeLibrary:
    """Stands in for the deepspeech module: Model(path) -> createStream() -> FakeStream."""

    def __init__(self) -> None:
        import threading

        self.log: List[Any] = []
        self.finished: List[bytes] = []
        self.fail_feed = False
        self.gate = threading.Event()
        self.gate.set()
        library = self

        class Model:
            def __init__(self, path: str) -> None:
                pass

            def sampleRate(self) -> int:
                return 16000

            def createStream(self) -> FakeStream:
                library.log.append(("create", 0))
                return FakeStream(library)

        self.Model = Model


async def in_process(tmp: Path, library: FakeLibrary, streaming: bool, test: Any) -> None:
    """A server over the stand-in library on 127.0.0.1; `test(port, handlers, server)` talks to it."""
    model = tmp / "output_graph.tflite"
    model.write_bytes(b"stand-in")
    holder = wyoming_asr.ModelHolder(str(model), library=library)
    await holder.load()
    server = wyoming_asr.Server(holder, wyoming_asr.Limits(), wyoming_asr.build_info(str(model), "0.7.4"), streaming)
    handlers: List[wyoming_asr.AsrHandler] = []

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = wyoming_asr.AsrHandler(server, reader, writer)
        handlers.append(handler)
        await handler.run()

    tcp = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        await test(tcp.sockets[0].getsockname()[1], handlers, server)
    finally:
        tcp.close()
        await tcp.wait_closed()
        holder.worker.shutdown(wait=True)


async def until(condition: Any, what: str) -> None:
    """Wait (without any timing claim) until the server reached a state."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never reached: " + what)


async def send_utterance(client: AsyncTcpClient, pcm: bytes, step: int = 3200) -> None:
    await client.write_event(Transcribe(language="de").event())
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    for start in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[start:start + step]).event())


async def answer(client: AsyncTcpClient) -> List[Event]:
    events: List[Event] = []
    while not events or not (Transcript.is_type(events[-1].type) or Error.is_type(events[-1].type)):
        event = await asyncio.wait_for(client.read_event(), 60)
        assert event is not None, events
        events.append(event)
    return events


def ramp(samples: int) -> bytes:
    return array.array("h", (i % 30000 for i in range(samples))).tobytes()


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "no-streaming"])
def test_chunks_that_arrive_during_a_library_call_go_into_the_next_one(tmp_path, streaming):
    """1.6 s in sixteen 100 ms chunks, the fifteen after the first sent while its feed is held: two
    library calls in all (the first chunk; the other fifteen with the final decode), every sample fed
    once and in order; with streaming one intermediate decode, at the last 0.5 s mark the batch
    passed (1.5 s)."""
    library = FakeLibrary()
    pcm = ramp(25600)

    async def test(port: int, handlers: List[Any], server: Any) -> None:
        library.gate.clear()
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await send_utterance(client, pcm[:3200])
            await until(lambda: library.log[-1:] == [("feed", 1600)], "the first feed running")
            for start in range(3200, len(pcm), 3200):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                                    audio=pcm[start:start + 3200]).event())
            await until(lambda: len(handlers[0].session.pending) == 24000, "fifteen chunks pending")
            await client.write_event(AudioStop().event())
            library.gate.set()
            events = await answer(client)
        assert library.finished == [pcm]
        expected = [("create", 0), ("feed", 1600)]
        if streaming:
            expected += [("feed", 22400), ("intermediate", 24000), ("feed", 1600)]
        else:
            expected += [("feed", 24000)]
        assert library.log == expected + [("finish", 25600)]
        assert Transcript.from_event(events[-1]).text == "wort0 wort1 wort2"
        types = [event.type for event in events]
        if streaming:
            chunks = [TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type)]
            assert types[0] == "transcript-start" and types[-2:] == ["transcript-stop", "transcript"], types
            assert chunks == ["wort0 wort1 ", "wort2"], chunks  # the intermediate's whole words, then the rest
        else:
            assert types == ["transcript"], types
        await until(lambda: server.sessions == 0 and server.holder.active == 0, "the slot given back")

    asyncio.run(in_process(tmp_path, library, streaming, test))


def test_a_client_in_real_time_gets_each_chunk_fed_at_once(tmp_path):
    """A chunk that arrives while the library is idle is fed in its own call (no waiting for more)."""
    library = FakeLibrary()
    pcm = ramp(17600)

    async def test(port: int, handlers: List[Any], server: Any) -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for n, start in enumerate(range(0, len(pcm), 3200)):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                                    audio=pcm[start:start + 3200]).event())
                await until(lambda: sum(1 for entry in library.log if entry[0] == "feed") == n + 1, "chunk fed")
            streamed = [event.type for event in [await asyncio.wait_for(client.read_event(), 60)
                                                 for _ in range(2)]]
            assert streamed == ["transcript-start", "transcript-chunk"]  # from the decode at 1 s, before the stop
            await client.write_event(AudioStop().event())
            events = await answer(client)
        assert Transcript.from_event(events[-1]).text == "wort0 wort1"
        feeds = [("feed", 1600)] * 5
        assert library.log == [("create", 0)] + feeds + [("intermediate", 8000)] + feeds + [("intermediate", 16000)] \
            + [("feed", 1600), ("finish", 17600)]

    asyncio.run(in_process(tmp_path, library, True, test))


def test_a_client_leaving_during_a_library_call_frees_its_stream_after_it(tmp_path):
    library = FakeLibrary()

    async def test(port: int, handlers: List[Any], server: Any) -> None:
        library.gate.clear()
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await send_utterance(client, ramp(1600))
            await until(lambda: library.log[-1:] == [("feed", 1600)], "the first feed running")
            for _ in range(3):  # more audio: pending when the client leaves
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=ramp(1600)).event())
            await until(lambda: len(handlers[0].session.pending) == 4800, "the rest pending")
        await until(lambda: server.sessions == 1 and handlers[0].session is None, "the client seen leaving")
        library.gate.set()
        await until(lambda: server.sessions == 0 and server.holder.active == 0, "the slot given back")
        await until(lambda: library.log[-1][0] == "free", "the stream freed")
        assert library.log == [("create", 0), ("feed", 1600), ("free", 1600)]  # nothing fed after the leave
        async with AsyncTcpClient("127.0.0.1", port) as client:  # and the next utterance is served
            await send_utterance(client, ramp(16000))
            await client.write_event(AudioStop().event())
            assert Transcript.from_event((await answer(client))[-1]).text == "wort0 wort1"

    asyncio.run(in_process(tmp_path, library, False, test))


@pytest.mark.fault
def test_a_failing_library_call_gets_a_decoder_error_and_the_server_serves_on(tmp_path):
    library = FakeLibrary()

    async def test(port: int, handlers: List[Any], server: Any) -> None:
        library.fail_feed = True
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await send_utterance(client, ramp(8000))
            await client.write_event(AudioStop().event())
            events = await answer(client)
            error = Error.from_event(events[-1])
            assert error.code == "decoder" and "stand-in failure" in error.text, error
            await until(lambda: server.sessions == 0 and server.holder.active == 0, "the slot given back")
            library.fail_feed = False
            await send_utterance(client, ramp(8000))  # the same connection, the next utterance
            await client.write_event(AudioStop().event())
            assert Transcript.from_event((await answer(client))[-1]).text == "wort0"

    asyncio.run(in_process(tmp_path, library, False, test))


def test_describe_during_an_utterance_is_answered_between_whole_events(tmp_path):
    """The feeder task and the event handling both write: every event arrives whole."""
    library = FakeLibrary()

    async def test(port: int, handlers: List[Any], server: Any) -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await send_utterance(client, ramp(16000), step=800)
            for _ in range(3):
                await client.write_event(Describe().event())
            await client.write_event(AudioStop().event())
            events = await answer(client)
        types = [event.type for event in events]
        assert types.count("info") == 3 and types[-1] == "transcript", types
        chunks = [TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type)]
        assert "".join(chunks) == "wort0 wort1", chunks

    asyncio.run(in_process(tmp_path, library, True, test))


def test_converter_native_audio_is_appended_as_it_is():
    """16 kHz mono 16-bit goes into the utterance's samples unchanged, an odd byte kept for the next chunk."""
    pcm = ramp(5000)
    converter = wyoming_asr.AudioConverter(16000, 2, 1)
    out = array.array("h")
    added = [converter.convert_into(pcm[i:i + 333], out) for i in range(0, len(pcm), 333)]
    assert sum(added) == 5000 and out.tobytes() == pcm
    assert wyoming_asr.AudioConverter(16000, 2, 1).convert(pcm) == pcm


def test_converter_resamples_44k_stereo_like_the_reference(fixture_files):
    """The batched resampler against a plain per-sample linear interpolation (±1 from float rounding)."""
    stereo = upsample_stereo_44k(fixture_files["pcm"])
    converter = wyoming_asr.AudioConverter(44100, 2, 2)
    out = array.array("h", b"".join(converter.convert(stereo[i:i + 17640]) for i in range(0, len(stereo), 17640)))
    src = array.array("h")
    src.frombytes(stereo)
    mono = [(src[i] + src[i + 1]) >> 1 for i in range(0, len(src), 2)]
    step, pos, reference = 44100 / 16000.0, 0.0, []
    while pos < len(mono) - 1:
        i = int(pos)
        reference.append(int(mono[i] + (mono[i + 1] - mono[i]) * (pos - i)))
        pos += step
    assert abs(len(out) - len(reference)) <= 1
    assert max(abs(a - b) for a, b in zip(out, reference)) <= 1
