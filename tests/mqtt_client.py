"""A real MQTT client for the tests (paho-mqtt 1.x or 2.x, the client library the Pis use): connect to a
broker on loopback as a user or anonymously, read the CONNACK's return code, subscribe, publish, record
what arrives. Used by tests/test_mqtt_accounts.py and, on the controller, by the fleet scenario's tests.
"""
from __future__ import annotations

import threading
from typing import Any, List, Optional, Tuple

# The MQTT 3.1.1 CONNACK return codes the tests assert.
ACCEPTED = 0
NOT_AUTHORIZED = 5


class Client(object):
    """paho-mqtt (1.x or 2.x): connect as a user, record messages."""

    def __init__(self, port: int, username: Optional[str] = None, password: Optional[str] = None) -> None:
        import paho.mqtt.client as mqtt

        self.client = (mqtt.Client(mqtt.CallbackAPIVersion.VERSION1) if hasattr(mqtt, "CallbackAPIVersion")
                       else mqtt.Client())
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.rc: Optional[int] = None
        self.messages: List[Tuple[str, bytes]] = []
        self.granted: List[Any] = []
        self.subscribed = threading.Event()

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any) -> None:
            self.rc = int(rc)
            self.connected.set()

        def on_subscribe(client: Any, userdata: Any, mid: Any, granted: Any) -> None:
            self.granted = list(granted)
            self.subscribed.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = lambda client, userdata, message: self.messages.append((message.topic, message.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.connected.wait(10)

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, 0)
        assert self.subscribed.wait(10)

    def publish(self, topic: str, payload: bytes = b"x") -> None:
        self.client.publish(topic, payload).wait_for_publish()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
