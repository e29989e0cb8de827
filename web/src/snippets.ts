/**
 * Ready-to-copy snippets for a new device's token (shown once): curl over HTTPS, MQTT over
 * WebSocket with MQTT.js and Paho, mosquitto_pub through the LAN agent's broker, and the agent's
 * config. Pure functions: tests run the curl snippet for real against the local edge.
 */

export interface Snippet {
  id: "curl" | "mqttjs" | "paho" | "mosquitto" | "agent";
  label: string;
  text: string;
}

/** A payload a device of this type would send (docs/api.md). */
export function examplePayload(type: string): Record<string, unknown> {
  switch (type) {
    case "temperature":
      return { temperature: { value: 21.5, unit: "°C" }, humidity: 45 };
    case "energy":
      return { power_kw: 1.2, total_energy_kwh: 1234.5 };
    case "motion":
      return { motion: true };
    default:
      return { value: 1 };
  }
}

/** Single-quoted for a POSIX shell: the text cannot end the quote. */
export const shellQuote = (text: string) => `'${text.replaceAll("'", `'"'"'`)}'`;

export function deviceSnippets(
  origin: string,
  device: { id: string; type: string },
  token: string,
  payload = examplePayload(device.type),
): Snippet[] {
  const url = new URL(origin);
  const secure = url.protocol === "https:";
  const wsUrl = `${secure ? "wss" : "ws"}://${url.host}/mqtt/${device.id}`;
  const port = url.port || (secure ? "443" : "80");
  const body = JSON.stringify({ payload });
  const topic = `devices/${device.id}/telemetry`;
  return [
    {
      id: "curl",
      label: "curl (HTTPS)",
      text: [
        `curl -sS -X POST ${shellQuote(`${url.origin}/v1/telemetry`)} \\`,
        `  -H ${shellQuote(`Authorization: Bearer ${token}`)} \\`,
        `  -H 'Content-Type: application/json' \\`,
        `  -d ${shellQuote(body)}`,
      ].join("\n"),
    },
    {
      id: "mqttjs",
      label: "MQTT.js (MQTT over WebSocket)",
      text: [
        `import mqtt from "mqtt";`,
        ``,
        `const client = mqtt.connect(${JSON.stringify(wsUrl)}, {`,
        `  protocolVersion: 5,`,
        `  clientId: ${JSON.stringify(device.id)},`,
        `  username: ${JSON.stringify(device.id)},`,
        `  password: ${JSON.stringify(token)},`,
        `});`,
        `client.on("connect", () => {`,
        `  client.publish(${JSON.stringify(topic)}, JSON.stringify(${JSON.stringify({ payload })}), { qos: 1 }, () => client.end());`,
        `});`,
      ].join("\n"),
    },
    {
      id: "paho",
      label: "Paho (Python, MQTT over WebSocket)",
      text: [
        `import json`,
        `import paho.mqtt.client as mqtt`,
        ``,
        `client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=${JSON.stringify(device.id)},`,
        `                     transport="websockets", protocol=mqtt.MQTTv5)`,
        `client.ws_set_options(path=${JSON.stringify(`/mqtt/${device.id}`)})`,
        `client.username_pw_set(${JSON.stringify(device.id)}, ${JSON.stringify(token)})`,
        ...(secure ? ["client.tls_set()"] : []),
        `client.connect(${JSON.stringify(url.hostname)}, ${port})`,
        `client.loop_start()`,
        `client.publish(${JSON.stringify(topic)}, json.dumps(${JSON.stringify({ payload })}), qos=1).wait_for_publish()`,
        `client.loop_stop()`,
      ].join("\n"),
    },
    {
      id: "mosquitto",
      label: "mosquitto_pub (through the LAN agent's broker)",
      text: [
        `# mosquitto_pub speaks MQTT over TCP, not WebSocket: publish to the LAN broker the agent`,
        `# bridges, on a topic one of its rules maps to this device (docs/agent.md), e.g.:`,
        `mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -t ${shellQuote(`homelab/${device.type}/${device.id}`)} -m ${shellQuote(JSON.stringify(payload))}`,
      ].join("\n"),
    },
    {
      id: "agent",
      label: "LAN agent (agent.yaml)",
      text: [
        `# The agent carries this device with its own token; list the device under mqtt.devices:`,
        `edge:`,
        `  url: ${url.origin}`,
        `  token_env: EDGEMESH_AGENT_TOKEN # the agent's token, not this device's`,
        `mqtt:`,
        `  url: mqtt://127.0.0.1:1883`,
        `  devices: [${device.id}]`,
        `  rules:`,
        `    - topic: homelab/${device.type}/+`,
        `      routing_key: sensors.${device.type}.{1}`,
        `      device: "{1}"`,
        `# This device's own token (for a direct connection instead): ${token}`,
      ].join("\n"),
    },
  ];
}
