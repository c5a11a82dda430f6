"""On-device helpers of the offline voice appliance.

* :mod:`voice_appliance.scorer` — DeepSpeech 0.7.4 scorer packager (stdlib only).
* :mod:`voice_appliance.sentences` — Rhasspy ``sentences.ini`` expansion with clear errors.
* :mod:`voice_appliance.retrain` — sentences → KenLM → scorer → verify → atomic swap → reload.
"""

__version__ = "0.1.0"
