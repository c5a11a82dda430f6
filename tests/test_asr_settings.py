"""rhasspy_asr's one check before the service (plugins/filter/asr_settings.py): every problem named at once with its fix."""
from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.filter.asr_settings import rhasspy_asr_errors

GOOD: Dict[str, Any] = {"host": "pi-1", "graph": "tflite",
                        "model_files": {"tflite": "/m/current/output_graph.tflite", "alphabet": "/m/current/alphabet.txt",
                                        "scorer": "/m/current/kenlm.scorer"},
                        "generated_scorer": "/var/lib/voice-appliance/generated.scorer", "site_id": "kitchen_1",
                        "retrain_config": "/etc/voice-appliance/retrain.json", "retrain_config_written": True,
                        "retrain_config_found": None, "check_mode": False}


def test_a_converged_run_passes_and_so_does_a_pi_that_has_the_configuration_or_refuses_training() -> None:
    assert rhasspy_asr_errors(GOOD) == []
    assert rhasspy_asr_errors(dict(GOOD, retrain_config_written=False, retrain_config_found=True)) == []
    assert rhasspy_asr_errors(dict(GOOD, retrain_config="", retrain_config_written=False)) == [], "training refused: nothing to find"
    assert rhasspy_asr_errors(dict(GOOD, retrain_config_written=False, retrain_config_found=False, check_mode=True)) == []


@pytest.mark.bad_input
def test_every_problem_is_named_at_once_with_its_fix() -> None:
    errors = rhasspy_asr_errors(dict(GOOD, graph="pb", generated_scorer="/m/current/kenlm.scorer", site_id="kitchen/1",
                                     retrain_config_written=False, retrain_config_found=False))
    assert errors == [
        "rhasspy_asr needs the current model's pb graph (rhasspy_asr_model_files, set by the role deepspeech_model; got "
        '{"tflite": "/m/current/output_graph.tflite", "alphabet": "/m/current/alphabet.txt", "scorer": "/m/current/kenlm.scorer"}). '
        "Run it after deepspeech_model (playbooks/appliance.yml).",
        "rhasspy_asr_generated_scorer (/m/current/kenlm.scorer) is the model's base scorer: training would overwrite the German "
        "scorer. Let it name a file in the state directory, e.g. /var/lib/voice-appliance/generated.scorer.",
        "rhasspy_asr_site_id 'kitchen/1' of pi-1 may hold only letters, digits, '_' and '-' (it is part of MQTT topics such as "
        "rhasspy/asr/<siteId>/train).",
        "/etc/voice-appliance/retrain.json does not exist: the role scorer_retrain writes it (run it before rhasspy_asr, as "
        "playbooks/appliance.yml does), or set rhasspy_asr_retrain_config: \"\" to refuse training requests."]


@pytest.mark.bad_input
def test_a_model_without_a_base_scorer_is_no_clash_and_an_empty_site_id_is_refused() -> None:
    no_scorer = dict(GOOD, model_files={"tflite": "/m/t.tflite", "alphabet": "/m/a.txt"}, generated_scorer="")
    assert rhasspy_asr_errors(dict(no_scorer, generated_scorer="/s/generated.scorer")) == []
    assert [e.split(" ", 1)[0] for e in rhasspy_asr_errors(dict(GOOD, site_id=""))] == ["rhasspy_asr_site_id"]
