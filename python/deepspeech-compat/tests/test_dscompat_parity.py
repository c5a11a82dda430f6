"""API parity with the official 0.7.4 package, read from the official wheel's Python source (ast)."""
from __future__ import annotations

import ast
import inspect
import json
from typing import Any, Dict, List, Tuple

import pytest

import dscompat_support as support
import deepspeech
from deepspeech import client, impl


def upstream_tree(official_wheels: Dict[str, str], member: str) -> ast.Module:
    return ast.parse(support.read_from_wheel(official_wheels["tflite"], member))


def signature_of(function: ast.FunctionDef) -> List[Tuple[str, Any]]:
    args = function.args.args
    defaults = [None] * (len(args) - len(function.args.defaults)) + [ast.literal_eval(d) for d in function.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults)]


def my_signature(function: Any) -> List[Tuple[str, Any]]:
    params = inspect.signature(function).parameters.values()
    return [(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in params]


def classes(tree: ast.Module) -> Dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def test_both_official_wheels_carry_the_same_python_api(official_wheels):
    for member in ("deepspeech/__init__.py", "deepspeech/client.py", "deepspeech/impl.py"):
        assert support.read_from_wheel(official_wheels["tflite"], member) == support.read_from_wheel(official_wheels["tensorflow"], member)


def test_public_names(official_wheels):
    tree = upstream_tree(official_wheels, "deepspeech/__init__.py")
    names = set(classes(tree))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "deepspeech.impl":
            names.update(alias.asname or alias.name for alias in node.names)
    assert names == {"Model", "Stream", "TokenMetadata", "CandidateTranscript", "Metadata", "version"}
    for name in names:
        assert hasattr(deepspeech, name), name
    assert deepspeech.impl is impl


@pytest.mark.parametrize("class_name", ["Model", "Stream"])
def test_method_signatures(official_wheels, class_name):
    upstream = classes(upstream_tree(official_wheels, "deepspeech/__init__.py"))[class_name]
    methods = {n.name: n for n in upstream.body if isinstance(n, ast.FunctionDef)}
    mine = getattr(deepspeech, class_name)
    for name, node in methods.items():
        assert my_signature(getattr(mine, name)) == signature_of(node), (class_name, name)
    extra = {n for n, v in vars(mine).items() if callable(v) and not n.startswith("_")} - set(methods)
    assert extra == set(), extra


def test_metadata_attributes(official_wheels):
    upstream = classes(upstream_tree(official_wheels, "deepspeech/__init__.py"))
    for class_name in ("TokenMetadata", "CandidateTranscript", "Metadata"):
        attributes = {n.name for n in upstream[class_name].body if isinstance(n, ast.FunctionDef)}
        mine = getattr(deepspeech, class_name)
        assert attributes and all(isinstance(getattr(mine, a), property) for a in attributes), class_name
    # upstream's SWIG classes (impl.py) expose the same names as properties
    swig = classes(upstream_tree(official_wheels, "deepspeech/impl.py"))
    for class_name in ("TokenMetadata", "CandidateTranscript", "Metadata"):
        props = {t.id for n in swig[class_name].body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name) and isinstance(n.value, ast.Call)
                 and getattr(n.value.func, "id", "") == "property" and t.id != "thisown"}
        assert props == {a for a, v in vars(getattr(deepspeech, class_name)).items() if isinstance(v, property)}


def test_metadata_repr_matches_upstream_format():
    token = impl.TokenMetadata("a", 3, 0.06)
    candidate = impl.CandidateTranscript([token, impl.TokenMetadata("b", 5, 0.1)], -1.5)
    assert repr(token) == "TokenMetadata(text='a', timestep=3, start_time=0.06)"
    assert repr(candidate) == ("CandidateTranscript(confidence=-1.5, tokens=[\n  TokenMetadata(text='a', timestep=3, "
                               "start_time=0.06),\n  TokenMetadata(text='b', timestep=5, start_time=0.1)\n])")
    assert repr(impl.Metadata([candidate])).startswith("Metadata(transcripts=[\n  CandidateTranscript(confidence=-1.5")


def test_impl_functions_and_constants(official_wheels):
    tree = upstream_tree(official_wheels, "deepspeech/impl.py")
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_swig")}
    for name, node in functions.items():
        if name in ("FreeMetadata", "FreeString"):
            continue  # SWIG internals; memory is managed inside the binding here
        assert my_signature(getattr(impl, name)) == signature_of(node), name
    constants = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name) and t.id.startswith("ERR_")}
    assert constants == {n for n in dir(impl) if n.startswith("ERR_")}


def upstream_client_function(official_wheels, name: str) -> Any:
    """One function of upstream's client.py, compiled alone (it needs only json)."""
    tree = upstream_tree(official_wheels, "deepspeech/client.py")
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace = {"json": json}  # type: Dict[str, Any]
    exec(compile(ast.Module(body=[node], type_ignores=[]), "upstream-client", "exec"), namespace)
    return namespace[name]


TOKEN_CASES = [
    "das ist ein test",
    " hallo  welt ",
    "x",
    "",
    "öffne die tür",
]


def tokens_for(text: str) -> List[impl.TokenMetadata]:
    return [impl.TokenMetadata(ch, 2 * i, 0.04 * i) for i, ch in enumerate(text)]


@pytest.mark.parametrize("text", TOKEN_CASES)
def test_client_output_functions_match_upstream(official_wheels, text):
    metadata = impl.Metadata([impl.CandidateTranscript(tokens_for(text), -3.25),
                              impl.CandidateTranscript(tokens_for(text[::-1]), -7.5)])
    for name in ("metadata_to_string", "words_from_candidate_transcript"):
        assert getattr(client, name)(metadata.transcripts[0]) == upstream_client_function(official_wheels, name)(metadata.transcripts[0])
    # metadata_json_output calls words_from_candidate_transcript: compile both of upstream's together
    upstream_words = upstream_client_function(official_wheels, "words_from_candidate_transcript")
    namespace = {"json": json, "words_from_candidate_transcript": upstream_words}
    tree = upstream_tree(official_wheels, "deepspeech/client.py")
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "metadata_json_output")
    exec(compile(ast.Module(body=[node], type_ignores=[]), "upstream-client", "exec"), namespace)
    assert client.metadata_json_output(metadata) == namespace["metadata_json_output"](metadata)


def test_client_flags_match_upstream(official_wheels):
    tree = upstream_tree(official_wheels, "deepspeech/client.py")
    upstream = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flag = ast.literal_eval(node.args[0])
            options = {k.arg: k.value for k in node.keywords}
            upstream[flag] = {
                "required": ast.literal_eval(options["required"]) if "required" in options else False,
                "type": getattr(options.get("type"), "id", None),
                "default": ast.literal_eval(options["default"]) if "default" in options else None,
                "store_true": "action" in options and not isinstance(options["action"], ast.Name),
            }
    mine = {}
    for action in client.build_parser()._actions:
        if not action.option_strings or action.option_strings[0] == "-h":
            continue
        mine[action.option_strings[0]] = {
            "required": action.required,
            "type": getattr(action.type, "__name__", None),
            "default": action.default,
            "store_true": action.const is True and action.nargs == 0,
        }
    assert set(upstream) == set(mine) == {"--model", "--scorer", "--audio", "--beam_width", "--lm_alpha", "--lm_beta",
                                          "--version", "--extended", "--json", "--candidate_transcripts"}
    for flag in upstream:
        expected = dict(upstream[flag])
        if expected["store_true"]:
            expected["default"] = False
        assert mine[flag] == expected, flag
