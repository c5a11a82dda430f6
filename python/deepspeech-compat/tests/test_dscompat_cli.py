"""The deepspeech command: argument handling and input checks (the library-free parts)."""
from __future__ import annotations

import pytest

import dscompat_support as support
from deepspeech import client
from dscompat_support import write_pcm_wav


def usage_error(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        client.parse_args(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_upstream_invocation_parses():
    args = client.parse_args(["--model", "m.tflite", "--scorer", "s.scorer", "--audio", "audio_input.wav"])
    assert (args.model, args.scorer, args.audio) == ("m.tflite", "s.scorer", "audio_input.wav")
    assert args.candidate_transcripts == 3 and not args.json and not args.extended
    assert args.beam_width is None and args.lm_alpha is None


def test_usage_errors(capsys):
    assert "--audio" in usage_error(capsys, ["--model", "m.tflite"])
    assert "--lm_alpha and --lm_beta must be given together (got only --lm_alpha)" in usage_error(
        capsys, ["--model", "m", "--audio", "a", "--scorer", "s", "--lm_alpha", "0.9"])
    assert "need --scorer" in usage_error(capsys, ["--model", "m", "--audio", "a", "--lm_alpha", "0", "--lm_beta", "0"])
    assert "--beam_width must be at least 1, got 0" in usage_error(capsys, ["--model", "m", "--audio", "a", "--beam_width", "0"])
    assert "--candidate_transcripts must be at least 1" in usage_error(
        capsys, ["--model", "m", "--audio", "a", "--candidate_transcripts", "0"])
    assert "invalid float value: 'x'" in usage_error(capsys, ["--model", "m", "--audio", "a", "--lm_beta", "x"])


def test_zero_weights_are_kept():
    # upstream's "if args.lm_alpha and args.lm_beta" dropped 0.0; here both are passed on
    args = client.parse_args(["--model", "m", "--audio", "a", "--scorer", "s", "--lm_alpha", "0", "--lm_beta", "0"])
    assert (args.lm_alpha, args.lm_beta) == (0.0, 0.0)


def test_check_inputs_names_each_missing_file(tmp_path):
    model, scorer, audio = str(tmp_path / "m.tflite"), str(tmp_path / "s.scorer"), str(tmp_path / "a.wav")
    args = client.parse_args(["--model", model, "--scorer", scorer, "--audio", audio])
    with pytest.raises(FileNotFoundError, match="model file .*m.tflite.* does not exist"):
        client.check_inputs(args)
    support.write_tflite_header(model)
    with pytest.raises(FileNotFoundError, match="scorer file .*s.scorer.* does not exist"):
        client.check_inputs(args)
    open(scorer, "wb").close()
    with pytest.raises(FileNotFoundError, match="audio file .*a.wav.* does not exist"):
        client.check_inputs(args)
    write_pcm_wav(audio, rate=8000)
    assert client.check_inputs(args).sample_rate == 8000  # the rate is checked against the model later


def test_commands_without_a_library(tmp_path):
    wav = str(tmp_path / "a.wav")
    write_pcm_wav(wav, channels=2)
    model = str(tmp_path / "m.tflite")
    support.write_tflite_header(model)
    # the source tree carries no library: --version says what to do
    version = support.run_cli(None, ["--version"])
    assert version.returncode == 1 and "No libdeepspeech.so" in version.stderr and "DEEPSPEECH_LIBRARY" in version.stderr
    # input errors come before any library is needed
    stereo = support.run_cli(None, ["--model", model, "--audio", wav])
    assert stereo.returncode == 1 and stereo.stdout == ""
    assert "2 channels (needs 1, mono)" in stereo.stderr and "sox " in stereo.stderr
    missing = support.run_cli(None, ["--model", str(tmp_path / "nope.pb"), "--audio", wav])
    assert missing.returncode == 1 and "nope.pb' does not exist" in missing.stderr
    helped = support.run_cli(None, ["--help"])
    assert helped.returncode == 0 and "--candidate_transcripts" in helped.stdout
