"""The ``deepspeech`` command: upstream 0.7.4 client's flags and output, with explained errors.

Output as upstream: the transcript (or ``--extended`` / ``--json`` form) on
stdout, progress and timings on stderr, ``--version`` prints ``DeepSpeech  0.7.4``.
Differences, all on bad input: every input file is checked before the model is
loaded; a WAV that is not 16-bit mono PCM at the model's rate is refused with
the sox command that converts it (upstream resampled silently through sox and
read stereo as mono); ``--lm_alpha``/``--lm_beta`` must be given together and
need ``--scorer`` (upstream ignored them silently, also when one was 0).
Exit status: 0 success, 1 runtime error, 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from timeit import default_timer as timer
from typing import Any, Dict, List, Optional, Sequence

from . import impl
from ._checks import check_rate, read_wav
from ._errors import AudioFormatError, DeepSpeechError, LibraryError


def metadata_to_string(transcript: Any) -> str:
    return "".join(token.text for token in transcript.tokens)


def words_from_candidate_transcript(transcript: Any) -> List[Dict[str, Any]]:
    """Words with start time and duration, exactly as upstream's client builds them.

    The key ``"start_time "`` (with a trailing space) is upstream 0.7.4's; it is
    kept so that consumers of upstream's JSON keep working.
    """
    word = ""
    words = []  # type: List[Dict[str, Any]]
    word_start_time = 0  # an int 0, as upstream: its JSON shows 0 (not 0.0) for a leading space
    tokens = transcript.tokens
    for i, token in enumerate(tokens):
        if token.text != " ":
            if len(word) == 0:
                word_start_time = token.start_time
            word = word + token.text
        if token.text == " " or i == len(tokens) - 1:
            duration = token.start_time - word_start_time
            if duration < 0:
                duration = 0
            words.append({"word": word, "start_time ": round(word_start_time, 4), "duration": round(duration, 4)})
            word = ""
            word_start_time = 0
    return words


def metadata_json_output(metadata: Any) -> str:
    result = {
        "transcripts": [
            {"confidence": transcript.confidence, "words": words_from_candidate_transcript(transcript)}
            for transcript in metadata.transcripts
        ]
    }
    return json.dumps(result, indent=2)


class VersionAction(argparse.Action):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["nargs"] = 0
        super(VersionAction, self).__init__(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        try:
            print("DeepSpeech ", impl.Version())
            info = impl.library_info()
            print("libdeepspeech: {} ({}, {}-bit {})".format(info.path, info.flavour, info.elf.bits, info.elf.machine), file=sys.stderr)
        except LibraryError as exc:
            print("deepspeech: error: {}".format(exc), file=sys.stderr)
            sys.exit(1)
        sys.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepspeech", description="Running DeepSpeech inference.")
    parser.add_argument("--model", required=True, help="Path to the model (.tflite for the TFLite library, .pb/.pbmm for the TensorFlow library)")
    parser.add_argument("--scorer", required=False, help="Path to the external scorer file")
    parser.add_argument("--audio", required=True, help="Path to the audio file to run (WAV format, 16-bit mono PCM)")
    parser.add_argument("--beam_width", type=int, help="Beam width for the CTC decoder")
    parser.add_argument("--lm_alpha", type=float, help="Language model weight (lm_alpha). If not specified, use default from the scorer package.")
    parser.add_argument("--lm_beta", type=float, help="Word insertion bonus (lm_beta). If not specified, use default from the scorer package.")
    parser.add_argument("--version", action=VersionAction, help="Print version and exits")
    parser.add_argument("--extended", required=False, action="store_true", help="Output string from extended metadata")
    parser.add_argument("--json", required=False, action="store_true", help="Output json from metadata with timestamp of each word")
    parser.add_argument("--candidate_transcripts", type=int, default=3, help="Number of candidate transcripts to include in JSON output")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and cross-check the arguments (usage errors exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.lm_alpha is None) != (args.lm_beta is None):
        parser.error("--lm_alpha and --lm_beta must be given together (got only {})".format(
            "--lm_alpha" if args.lm_beta is None else "--lm_beta"))
    if args.lm_alpha is not None and not args.scorer:
        parser.error("--lm_alpha/--lm_beta set the external scorer's weights and need --scorer")
    if args.beam_width is not None and args.beam_width < 1:
        parser.error("--beam_width must be at least 1, got {}".format(args.beam_width))
    if args.candidate_transcripts < 1:
        parser.error("--candidate_transcripts must be at least 1, got {}".format(args.candidate_transcripts))
    return args


def check_inputs(args: argparse.Namespace) -> Any:
    """Check the files before the (slow) model load; returns the WAV audio read without rate check."""
    if not os.path.isfile(args.model):
        raise FileNotFoundError(
            "model file {!r} does not exist (--model takes output_graph.tflite for the TFLite library, "
            "output_graph.pb/.pbmm for the x86_64 TensorFlow library)".format(args.model))
    if args.scorer and not os.path.isfile(args.scorer):
        raise FileNotFoundError("scorer file {!r} does not exist (--scorer takes a DeepSpeech 0.7 .scorer package)".format(args.scorer))
    if not os.path.isfile(args.audio):
        raise FileNotFoundError("audio file {!r} does not exist (--audio takes a 16 kHz 16-bit mono WAV file)".format(args.audio))
    return read_wav(args.audio, sample_rate=None)


def run(args: argparse.Namespace) -> int:
    from . import Model  # deferred: keeps --help free of the library

    audio = check_inputs(args)

    print("Loading model from file {}".format(args.model), file=sys.stderr)
    start = timer()
    ds = Model(args.model)
    print("Loaded model in {:.3}s.".format(timer() - start), file=sys.stderr)

    if args.beam_width is not None:
        ds.setBeamWidth(args.beam_width)

    check_rate(args.audio, audio, ds.sampleRate())

    if args.scorer:
        print("Loading scorer from files {}".format(args.scorer), file=sys.stderr)
        start = timer()
        ds.enableExternalScorer(args.scorer)
        print("Loaded scorer in {:.3}s.".format(timer() - start), file=sys.stderr)
        if args.lm_alpha is not None:
            ds.setScorerAlphaBeta(args.lm_alpha, args.lm_beta)

    print("Running inference.", file=sys.stderr)
    start = timer()
    if args.extended:
        print(metadata_to_string(ds.sttWithMetadata(audio.samples, 1).transcripts[0]))
    elif args.json:
        print(metadata_json_output(ds.sttWithMetadata(audio.samples, args.candidate_transcripts)))
    else:
        print(ds.stt(audio.samples))
    print("Inference took %0.3fs for %0.3fs audio file." % (timer() - start, audio.seconds), file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, AudioFormatError, DeepSpeechError, LibraryError) as exc:
        print("deepspeech: error: {}".format(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
