/** The LAN agent's routes: one agent credential, the devices whose metadata names it, nothing else. */
import { describe, expect, it } from "vitest";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

interface Results {
  results: { status: string; id?: string; code?: string; issues?: { path: string }[] }[];
}

async function agentWithDevices(count: number) {
  const agent = await createDevice({ id: uniqueId("agent"), kind: "service", type: "agent" });
  const devices = [];
  for (let i = 0; i < count; i++)
    devices.push(await createDevice({ id: uniqueId("meter"), type: "energy", metadata: { agent: agent.device.id } }));
  return { agent, devices };
}

const reading = (device: string, id: string, at = new Date(Date.now() - 60_000)) => ({
  device,
  id,
  routing_key: `sensors.energy.${device}`,
  timestamp: at.toISOString(),
  payload: { power_kw: 3.2 },
  metadata: { source_topic: `homelab/energy/${device}` },
});

async function gzipped(text: string): Promise<ArrayBuffer> {
  return new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
}

describe("agent routes", () => {
  it("stores a gzip batch of several devices with their own ids and times, and deduplicates a resend", async () => {
    const { agent, devices } = await agentWithDevices(2);
    const [a, b] = devices.map((d) => d.device.id) as [string, string];
    const batch = JSON.stringify({ messages: [reading(a, "m-1"), reading(b, "m-2"), reading(a, "m-3")] });
    const send = async () =>
      call("/v1/agent/messages", {
        method: "POST",
        headers: { authorization: `Bearer ${agent.token}`, "content-type": "application/json", "content-encoding": "gzip" },
        body: await gzipped(batch),
      });
    const first = await send();
    expect(first.status, await first.clone().text()).toBe(200);
    expect((await json<Results>(first)).results.map((r) => [r.status, r.id])).toEqual([
      ["stored", "m-1"],
      ["stored", "m-2"],
      ["stored", "m-3"],
    ]);
    expect((await json<Results>(await send())).results.every((r) => r.status === "stored")).toBe(true);
    const twin = await json<{ counters: { accepted: number; duplicates: number } }>(
      await call(`/v1/devices/${a}/twin`, { headers: ADMIN }),
    );
    expect(twin.counters).toMatchObject({ accepted: 2, duplicates: 2 });
    // The history row is the consumer's (the twin writes none on the happy path): it comes within the pack window.
    const messages = await eventually(
      async () => {
        const body = await json<{ messages: { id: string; source: string; timestamp: string }[] }>(
          await call(`/v1/messages?device=${b}`, { headers: ADMIN }),
        );
        // The twin's own events about the device (it came online) are the device's history too.
        return body.messages.find((m) => m.id === "m-2");
      },
      10_000,
      "the message's history",
    );
    expect(messages).toMatchObject({ id: "m-2", source: b });
  });

  it("rejects, per message and naming the field, a device that is not bridged by this agent", async () => {
    const { agent, devices } = await agentWithDevices(1);
    const other = await createDevice({ id: uniqueId("other"), type: "energy" });
    const res = await post("/v1/agent/messages", agent.token, {
      messages: [reading(devices[0]?.device.id ?? "", "ok-1"), reading(other.device.id, "no-1")],
    });
    const { results } = await json<Results>(res);
    expect(results[0]?.status).toBe("stored");
    expect(results[1]).toMatchObject({ status: "rejected", code: "forbidden" });
    expect(results[1]?.issues?.[0]?.path).toBe("messages.1.device");
  });

  it("answers a bad message in the batch alone, keeping the rest", async () => {
    const { agent, devices } = await agentWithDevices(1);
    const id = devices[0]?.device.id ?? "";
    const res = await post("/v1/agent/messages", agent.token, {
      messages: [{ ...reading(id, "bad-1"), payload: { power_kw: "lots" } }, reading(id, "good-1")],
    });
    const { results } = await json<Results>(res);
    expect(results[0]).toMatchObject({ status: "rejected", code: "invalid_payload" });
    expect(results[1]).toMatchObject({ status: "stored", id: "good-1" });
  });

  it("refuses a device's token and a wrong agent token", async () => {
    const { devices } = await agentWithDevices(1);
    const device = devices[0] as { token: string; device: { id: string } };
    const asDevice = await post("/v1/agent/messages", device.token, { messages: [reading(device.device.id, "x-1")] });
    expect(asDevice.status).toBe(403);
    const wrong = await post("/v1/agent/messages", `${device.device.id}.not-the-right-secret-at-all`, { messages: [] });
    expect(wrong.status).toBe(401);
  });

  it("hands a bridged device's commands to the agent, takes the result, and reports presence", async () => {
    const { agent, devices } = await agentWithDevices(1);
    const id = devices[0]?.device.id ?? "";
    const sent = await call(`/v1/devices/${id}/commands`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ command: "switch", parameters: { relay: "off" } }),
    });
    expect(sent.status).toBe(202);
    const polled = await json<{ commands: { id: string; command: string }[] }>(
      await call(`/v1/agent/devices/${id}/commands?wait_s=0`, { headers: { authorization: `Bearer ${agent.token}` } }),
    );
    expect(polled.commands.map((c) => c.command)).toEqual(["switch"]);
    const commandId = polled.commands[0]?.id ?? "";
    const answered = await post(`/v1/agent/devices/${id}/commands/${commandId}/result`, agent.token, {
      status: "succeeded",
      result: { relay: "off" },
    });
    expect(answered.status).toBe(200);
    const command = await json<{ command: { status: string } }>(await call(`/v1/devices/${id}/commands/${commandId}`, { headers: ADMIN }));
    expect(command.command.status).toBe("succeeded");

    const will = await post(`/v1/agent/devices/${id}/presence`, agent.token, { status: "offline", reason: "last_will" });
    expect(will.status).toBe(200);
    const twin = await json<{ availability: { status: string; reason: string } }>(await call(`/v1/devices/${id}/twin`, { headers: ADMIN }));
    expect(twin.availability).toMatchObject({ status: "offline", reason: "last_will" });

    const stranger = await createDevice({ id: uniqueId("stranger"), type: "energy" });
    const refused = await call(`/v1/agent/devices/${stranger.device.id}/commands`, { headers: { authorization: `Bearer ${agent.token}` } });
    expect(refused.status).toBe(403);
  });

  it("answers a waiting poll at once with a new desired state, and a poll does not make the device look alive", async () => {
    const { agent, devices } = await agentWithDevices(1);
    const id = devices[0]?.device.id ?? "";
    const poll = call(`/v1/agent/devices/${id}/commands?wait_s=20`, { headers: { authorization: `Bearer ${agent.token}` } });
    await new Promise((r) => setTimeout(r, 200));
    const patched = await call(`/v1/devices/${id}/twin/desired`, {
      method: "PATCH",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ desired: { relay: "on" } }),
    });
    expect(patched.status).toBe(200);
    const answer = await json<{ commands: unknown[]; desired: { version: number; state: unknown } }>(await poll);
    expect(answer.commands).toEqual([]);
    expect(answer.desired).toEqual({ version: 1, state: { relay: "on" } });
    const twin = await json<{ availability: { status: string } }>(await call(`/v1/devices/${id}/twin`, { headers: ADMIN }));
    expect(twin.availability.status).toBe("offline");
  });
});

describe("agent wake-up stream (GET /v1/agent/stream)", () => {
  async function stream(token: string) {
    const res = await call("/v1/agent/stream", { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });
    expect(res.status, res.status === 101 ? "" : await res.clone().text()).toBe(101);
    const ws = res.webSocket as WebSocket;
    const frames: Record<string, unknown>[] = [];
    const waiters: (() => void)[] = [];
    ws.addEventListener("message", (event) => {
      frames.push(JSON.parse(String(event.data)) as Record<string, unknown>);
      for (const w of waiters.splice(0)) w();
    });
    ws.accept();
    const next = async (count: number): Promise<Record<string, unknown>[]> => {
      const deadline = Date.now() + 5000;
      while (frames.length < count && Date.now() < deadline) await new Promise<void>((r) => waiters.push(r) && setTimeout(r, 200));
      return frames.slice(0, count);
    };
    return { ws, frames, next };
  }

  it("says hello, then wakes the agent for a bridged device's command and desired-state change", async () => {
    const { agent, devices } = await agentWithDevices(1);
    const device = devices[0]?.device.id as string;
    const { ws, next } = await stream(agent.token);
    expect((await next(1))[0]).toMatchObject({ type: "hello" });
    const sent = await call(`/v1/devices/${device}/commands`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ command: "switch_off" }),
    });
    expect(sent.status).toBe(202);
    expect((await next(2))[1]).toEqual({ type: "wake", device, reason: "commands" });
    const patched = await call(`/v1/devices/${device}/twin/desired`, {
      method: "PATCH",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ desired: { mode: "eco" } }),
    });
    expect(patched.status).toBe(200);
    expect((await next(3))[2]).toEqual({ type: "wake", device, reason: "desired" });
    ws.close(1000, "done");
  });

  it("wakes no agent for a device it does not carry, and refuses other credentials and plain requests", async () => {
    const { agent } = await agentWithDevices(0);
    const other = await createDevice({ id: uniqueId("plain"), type: "energy" });
    const { ws, frames, next } = await stream(agent.token);
    await next(1);
    expect(
      (
        await call(`/v1/devices/${other.device.id}/commands`, {
          method: "POST",
          headers: { ...ADMIN, "content-type": "application/json" },
          body: JSON.stringify({ command: "ping" }),
        })
      ).status,
    ).toBe(202);
    await new Promise((r) => setTimeout(r, 300));
    expect(frames.map((f) => f.type)).toEqual(["hello"]);
    ws.close(1000, "done");
    const byDevice = await call("/v1/agent/stream", { headers: { upgrade: "websocket", authorization: `Bearer ${other.token}` } });
    expect(byDevice.status).toBe(403);
    const plain = await call("/v1/agent/stream", { headers: { authorization: `Bearer ${agent.token}` } });
    expect(plain.status).toBe(426);
  });
});
