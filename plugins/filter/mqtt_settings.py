"""What is wrong with the MQTT settings (role mqtt_broker), as messages that name the fix; never the password.

Checked before the role changes anything, in one task::

    mqtt_broker_errors: >-
      {{ {'local': voice_appliance_mqtt_local | bool, 'username': voice_appliance_mqtt_username, ...}
         | pivoice.voice_appliance.mqtt_settings_errors }}

- with an external broker the user name and the password come as a pair (or neither: anonymous);
- the account names fit an ACL and, with the local broker, the core, the ASR service and the verification
  have distinct ones;
- the password fits on one line (it is kept as the first line of a file);
- a local broker that lets clients in without a password listens on loopback only.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping

ACL_NAME = re.compile(r"[A-Za-z0-9._-]*")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def mqtt_settings_errors(settings: Mapping[str, Any]) -> List[str]:
    """The problems of the MQTT settings, [] when there are none.

    settings: local (bool), username, password, service_username, verify_username, core_user (the core's account
    name in use), allow_anonymous (bool), bind_address.
    """
    errors: List[str] = []
    local = bool(settings["local"])
    username, password = str(settings["username"]), str(settings["password"])
    if not local and bool(username) != bool(password):
        errors.append("With an external broker set both voice_appliance_mqtt_username and voice_appliance_mqtt_password, or "
                      "neither (anonymous). (With the local broker either may be left empty: the Rhasspy core's account is then "
                      "`rhasspy`, its password generated.)")
    names = [username, str(settings["service_username"]), str(settings["verify_username"])]
    errors.extend("MQTT user name '{}': use only letters, digits, '.', '_' and '-'.".format(name)
                  for name in names if not ACL_NAME.fullmatch(name))
    accounts = [str(settings["core_user"]), names[1], names[2]]
    if local and len(set(accounts)) < 3:
        errors.append("The MQTT accounts of the Rhasspy core ('{}'), the ASR service ('{}') and the verification ('{}') are not "
                      "distinct: give the Rhasspy core (voice_appliance_mqtt_username), the ASR service "
                      "(voice_appliance_mqtt_service_username) and the verification (voice_appliance_mqtt_verify_username) "
                      "different names.".format(*accounts))
    if re.search("[\r\n\x00]", password):
        errors.append("voice_appliance_mqtt_password holds a line break or NUL character: it is kept as the first line of a "
                      "file. Choose a password without them (it is not shown here).")
    if local and settings["allow_anonymous"] and str(settings["bind_address"]) not in LOOPBACK:
        errors.append("voice_appliance_mqtt_allow_anonymous is true and Mosquitto would listen on {}: anyone on the network "
                      "could then talk to the ASR service without a password. Set voice_appliance_mqtt_allow_anonymous: false, "
                      "or keep mqtt_broker_bind_address at 127.0.0.1.".format(settings["bind_address"]))
    return errors


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"mqtt_settings_errors": mqtt_settings_errors}
