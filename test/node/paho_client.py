"""Eclipse Paho (Python) against the local edge's MQTT gateway, driven by mqtt-paho.test.ts.

Usage: paho_client.py <port> <device-id> <device-token> <admin-token> <3.1.1|5>
Publishes at QoS 0, 1 and 2, subscribes to its commands at QoS 2, asks the edge (admin API) for a
command, answers it over MQTT, keeps a retained message, then connects a second time with a
retained last will, drops the socket, and reads both retained messages back as a later subscriber.
Then a persistent session is resumed (a command queued while away arrives on the stored
subscription) and a publish to another device's topic is denied (v5: PUBACK 0x87; 3.1.1: the
connection is closed). Prints one JSON line per step; exits non-zero on any failure.
"""

import json
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt

port, device, token, admin_token, version = sys.argv[1:6]
protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311


def step(name, **data):
    print(json.dumps({"step": name, **data}), flush=True)


def admin(method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {admin_token}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


def new_client(client_id, will=False, persistent=False):
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        transport="websockets",
        **({"clean_session": not persistent} if protocol == mqtt.MQTTv311 else {}),
    )
    client.ws_set_options(path=f"/mqtt/{device}")
    client.username_pw_set(device, token)
    if will:
        client.will_set(f"devices/{device}/status", "offline", qos=1, retain=True)
    connected = threading.Event()
    result = {}

    def on_connect(_c, _u, flags, reason_code, _props=None):
        result["rc"] = str(reason_code)
        result["ok"] = not reason_code.is_failure
        client.session_present = flags.session_present
        connected.set()

    client.on_connect = on_connect
    if protocol == mqtt.MQTTv5:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 300
        client.connect("127.0.0.1", int(port), keepalive=30, clean_start=not persistent, properties=props)
    else:
        client.connect("127.0.0.1", int(port), keepalive=30)
    client.loop_start()
    if not connected.wait(10) or not result.get("ok"):
        raise SystemExit(f"connect failed: {result}")
    return client


client = new_client(device)
step("connected")

for qos, payload in ((0, {"payload": {"temperature": 19.5}}), (1, {"payload": {"humidity": 44}}), (2, {"battery": 66})):
    info = client.publish(f"devices/{device}/telemetry", json.dumps(payload), qos=qos)
    info.wait_for_publish(10)
    if not info.is_published():
        raise SystemExit(f"QoS {qos} publish not acknowledged")
step("published")

commands = []
got_command = threading.Event()


def on_message(_c, _u, message):
    if message.topic == f"devices/{device}/commands":
        commands.append(json.loads(message.payload))
        got_command.set()


client.on_message = on_message
subscribed = threading.Event()
client.on_subscribe = lambda *_args: subscribed.set()
client.subscribe(f"devices/{device}/commands", qos=2)
if not subscribed.wait(10):
    raise SystemExit("no SUBACK")
sent = admin("POST", f"/v1/devices/{device}/commands", {"command": "blink", "parameters": {"times": 2}})
if not got_command.wait(10):
    raise SystemExit("no command arrived")
command = commands[0]
if command["id"] != sent["command"]["id"]:
    raise SystemExit(f"unexpected command {command}")
info = client.publish(
    f"devices/{device}/commands/{command['id']}/result", json.dumps({"status": "succeeded", "result": {"ok": True}}), qos=1
)
info.wait_for_publish(10)
step("answered", command=command["id"])
info = client.publish(f"devices/{device}/state/relay", "on", qos=1, retain=True)
info.wait_for_publish(10)
step("retained")
client.disconnect()
client.loop_stop()

# Last will: connect with a will, then drop the connection without DISCONNECT.
willing = new_client(f"{device}-will", will=True)
step("will_connected")
willing.socket().close()
time.sleep(0.5)
willing.loop_stop()
step("dropped")

# A later subscriber gets both retained messages, the will's and the relay's, flagged as retained.
retained = {}
both = threading.Event()
reader = new_client(f"{device}-reader")


def on_retained(_c, _u, message):
    if message.retain:
        retained[message.topic] = message.payload.decode()
    if len(retained) == 2:
        both.set()


reader.on_message = on_retained
reader.subscribe([(f"devices/{device}/status", 0), (f"devices/{device}/state/#", 0)])
if not both.wait(10):
    raise SystemExit(f"retained messages missing: {retained}")
expected = {f"devices/{device}/status": "offline", f"devices/{device}/state/relay": "on"}
if retained != expected:
    raise SystemExit(f"retained {retained}, expected {expected}")
reader.disconnect()
reader.loop_stop()
step("retained_read")

# A persistent session: subscribe, leave, a command is queued, come back without subscribing.
persist_id = f"{device}-persist"
first = new_client(persist_id, persistent=True)
subscribed = threading.Event()
first.on_subscribe = lambda *_args: subscribed.set()
first.subscribe(f"devices/{device}/commands", qos=1)
if not subscribed.wait(10):
    raise SystemExit("no SUBACK (persistent)")
first.disconnect()
first.loop_stop()
queued = admin("POST", f"/v1/devices/{device}/commands", {"command": "reboot"})
arrived = threading.Event()
resumed_commands = []


def on_resumed(_c, _u, message):
    resumed_commands.append(json.loads(message.payload))
    arrived.set()


again = mqtt.Client(
    mqtt.CallbackAPIVersion.VERSION2,
    client_id=persist_id,
    protocol=protocol,
    transport="websockets",
    **({"clean_session": False} if protocol == mqtt.MQTTv311 else {}),
)
again.on_message = on_resumed
# Registered before the CONNECT: the command is sent right after the CONNACK.
again.session_present = None
resumed_connect = threading.Event()


def on_again(_c, _u, flags, reason_code, _props=None):
    again.session_present = flags.session_present
    resumed_connect.set()


again.on_connect = on_again
again.ws_set_options(path=f"/mqtt/{device}")
again.username_pw_set(device, token)
if protocol == mqtt.MQTTv5:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    again.connect("127.0.0.1", int(port), keepalive=30, clean_start=False, properties=props)
else:
    again.connect("127.0.0.1", int(port), keepalive=30)
again.loop_start()
if not resumed_connect.wait(10) or not again.session_present:
    raise SystemExit(f"session not resumed (session present: {again.session_present})")
if not arrived.wait(10) or resumed_commands[0]["id"] != queued["command"]["id"]:
    raise SystemExit(f"the queued command did not arrive on the resumed session: {resumed_commands}")
again.disconnect()
again.loop_stop()
step("resumed")

# A denied publish: another device's topic.
denier = new_client(f"{device}-deny")
if protocol == mqtt.MQTTv5:
    acked = threading.Event()
    codes = []

    def on_publish(_c, _u, _mid, reason_code, _props=None):
        codes.append(reason_code.value)
        acked.set()

    denier.on_publish = on_publish
    denier.publish("devices/someone-else/telemetry", "{}", qos=1)
    if not acked.wait(10) or codes != [0x87]:
        raise SystemExit(f"expected PUBACK 0x87, got {codes}")
    denier.disconnect()
else:
    dropped = threading.Event()
    denier.on_disconnect = lambda *_args: dropped.set()
    denier.publish("devices/someone-else/telemetry", "{}", qos=1)
    if not dropped.wait(10):
        raise SystemExit("a refused 3.1.1 publish must close the connection")
denier.loop_stop()
step("denied")
