// Eclipse Tahu's JavaScript edge node (npm sparkplug-client, pinned in package.json), driven by
// indunet's interop test: one JSON command per stdin line, one JSON event per stdout line.
//
// commands: {"op": "nbirth" | "dbirth" | "ndata" | "ddata" | "ddeath" | "skip" | "crash" | "stop",
//            "device": "...", "metrics": [{name?, alias?, type, value}], "compress": "GZIP" | "DEFLATE" | "DEFAULT"?}
//   "skip" spends a seq number without publishing (a lost message); "crash" exits without
//   DISCONNECT, so the broker publishes the node's will (its NDEATH).
// events:   {"event": "connected" | "ncmd" | "dcmd" | "rebirth" | "done" | "error", ...}
// A rebirth request (NCMD Node Control/Rebirth = true) is answered as a Tahu application does:
// the node publishes its NBIRTH and DBIRTHs again.
"use strict";

const readline = require("readline");
const sparkplug = require("sparkplug-client");

const [serverUrl, groupId, edgeNode] = process.argv.slice(2);
const client = sparkplug.newClient({
  serverUrl,
  groupId,
  edgeNode,
  clientId: `tahu-${edgeNode}-${process.pid}`,
  username: "",
  password: "",
  version: "spBv1.0",
  keepalive: 5,
});

const births = { node: null, devices: new Map() };

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function metrics(list) {
  // 64-bit integers travel as decimal strings (JSON numbers lose them); protobufjs takes strings
  return (list || []).map((m) => ({ ...m }));
}

function options(command) {
  // "DEFAULT": Tahu's compress without an algorithm (DEFLATE, and no "algorithm" metric)
  if (command.compress === "DEFAULT") return { compress: true };
  return command.compress ? { compress: true, algorithm: command.compress } : undefined;
}

function rebirth() {
  if (births.node) client.publishNodeBirth({ timestamp: Date.now(), metrics: metrics(births.node) });
  for (const [device, list] of births.devices) {
    client.publishDeviceBirth(device, { timestamp: Date.now(), metrics: metrics(list) });
  }
  emit({ event: "rebirth" });
}

client.on("birth", () => emit({ event: "connected" }));
client.on("error", (error) => emit({ event: "error", error: String(error) }));
client.on("ncmd", (payload) => {
  const names = (payload.metrics || []).map((m) => [m.name, m.value]);
  emit({ event: "ncmd", metrics: names, timestamp: Number(payload.timestamp) });
  if (names.some(([name, value]) => name === "Node Control/Rebirth" && value === true)) rebirth();
});
client.on("dcmd", (device, payload) => {
  const names = (payload.metrics || []).map((m) => [m.name, m.value]);
  emit({ event: "dcmd", device, metrics: names });
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  const now = Date.now();
  switch (command.op) {
    case "nbirth":
      births.node = command.metrics;
      client.publishNodeBirth({ timestamp: now, metrics: metrics(command.metrics) }, options(command));
      break;
    case "dbirth":
      births.devices.set(command.device, command.metrics);
      client.publishDeviceBirth(
        command.device, { timestamp: now, metrics: metrics(command.metrics) }, options(command));
      break;
    case "ndata":
      client.publishNodeData({ timestamp: now, metrics: metrics(command.metrics) }, options(command));
      break;
    case "ddata":
      client.publishDeviceData(
        command.device, { timestamp: now, metrics: metrics(command.metrics) }, options(command));
      break;
    case "ddeath":
      client.publishDeviceDeath(command.device, { timestamp: now });
      break;
    case "skip":
      client.incrementSeqNum();
      break;
    case "crash":
      process.exit(0); // the socket closes without DISCONNECT: the broker sends the will
      break;
    case "stop":
      client.stop();
      break;
    default:
      emit({ event: "error", error: `unknown op ${command.op}` });
      return;
  }
  emit({ event: "done", op: command.op });
});
