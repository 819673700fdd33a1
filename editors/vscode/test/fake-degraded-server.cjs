#!/usr/bin/env node
// A stand-in server that reports degraded isolation (what pycell does with --allow-degraded
// on a machine without user namespaces), to check that the extension warns visibly. It
// answers initialize, status, shutdown and exit; nothing else.
"use strict";
const rpc = require("vscode-jsonrpc/node");

const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(process.stdin), new rpc.StreamMessageWriter(process.stdout));
let shutdown = false;
conn.onRequest("initialize", () => ({
  serverInfo: { name: "pycell", version: "0.0.0-fake" },
  capabilities: { execute: true, sessions: false, analyze: false },
  isolation: { level: "degraded", userNamespace: false, pidNamespace: false, mountNamespace: false, networkNamespace: false, seccomp: true, cgroup: "none" },
  profiles: [{ name: "default", description: "fake", limits: {} }],
}));
conn.onRequest("status", () => ({ running: 0, queued: 0, executionsTotal: 0, pools: [{ profile: "default", ready: 1, target: 2 }] }));
conn.onRequest("shutdown", () => {
  shutdown = true;
  return null;
});
conn.onNotification("exit", () => process.exit(shutdown ? 0 : 1));
conn.listen();
