"""What rhasspy_asr needs before it installs the Hermes ASR service, as messages that name the fix.

One task checks it all (roles/rhasspy_asr/tasks/checks.yml)::

    rhasspy_asr_errors: >-
      {{ {'host': inventory_hostname, 'graph': rhasspy_asr_graph, 'model_files': rhasspy_asr_model_files, ...}
         | pivoice.voice_appliance.rhasspy_asr_errors }}

- the current model's graph of the kind the runtime reads is known (deepspeech_model ran first);
- the generated scorer is not the model's base scorer (training writes the generated one);
- the site id fits an MQTT topic level (rhasspy/asr/<siteId>/train);
- voice-retrain's configuration exists, when training is on: written by this run's scorer_retrain, or found on the
  Pi (``retrain_config_found``: true, false, or None when it was not looked for; check mode lets a missing one pass,
  as an earlier task would write it).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Mapping

_SITE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def rhasspy_asr_errors(settings: Mapping[str, Any]) -> List[str]:
    """Every problem at once, each with its fix; [] when rhasspy_asr can go on."""
    errors: List[str] = []
    model_files: Mapping[str, Any] = settings.get("model_files") or {}
    graph, generated = str(settings["graph"]), str(settings["generated_scorer"])
    if graph not in model_files:
        errors.append("rhasspy_asr needs the current model's {} graph (rhasspy_asr_model_files, set by the role deepspeech_model; "
                      "got {}). Run it after deepspeech_model (playbooks/appliance.yml).".format(graph, json.dumps(dict(model_files))))
    if generated == str(model_files.get("scorer") or ""):
        errors.append("rhasspy_asr_generated_scorer ({}) is the model's base scorer: training would overwrite the German scorer. "
                      "Let it name a file in the state directory, e.g. /var/lib/voice-appliance/generated.scorer.".format(generated))
    site_id = str(settings["site_id"])
    if not _SITE_ID.match(site_id):
        errors.append("rhasspy_asr_site_id '{}' of {} may hold only letters, digits, '_' and '-' (it is part of MQTT topics such "
                      "as rhasspy/asr/<siteId>/train).".format(site_id, settings["host"]))
    config = str(settings.get("retrain_config") or "")
    if config and not (settings.get("retrain_config_written") or settings.get("retrain_config_found") or settings.get("check_mode")):
        errors.append("{} does not exist: the role scorer_retrain writes it (run it before rhasspy_asr, as playbooks/appliance.yml "
                      "does), or set rhasspy_asr_retrain_config: \"\" to refuse training requests.".format(config))
    return errors


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"rhasspy_asr_errors": rhasspy_asr_errors}
