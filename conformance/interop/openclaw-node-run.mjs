// openclaw-node-run.mjs: runs the npm client openclaw-node, unchanged, as a node that pairs with
// a gateway: OCN_URL, OCN_TOKEN, OCN_IDENTITY (its device identity file), OCN_MODULE (the path of
// the installed package's dist/index.mjs). Prints one JSON line per thing the client reports,
// with the wall time in ms; runs until killed.
const { OpenClawClient } = await import(process.env.OCN_MODULE);

const say = (ev, extra = {}) =>
  process.stdout.write(JSON.stringify({ t: Date.now(), ev, ...extra }) + "\n");

const client = new OpenClawClient({
  url: process.env.OCN_URL,
  token: process.env.OCN_TOKEN,
  role: "node",
  scopes: [],
  deviceIdentityPath: process.env.OCN_IDENTITY,
});
say("identity", { deviceId: client.deviceIdentity?.deviceId });
client.on("connected", (h) => say("connected", { protocol: h.protocol }));
client.on("disconnected", (d) => say("disconnected", d));
client.on("pairingRequired", (p) => say("pairingRequired", p));
client.on("error", (e) => say("error", { message: String(e?.message ?? e) }));
client.on("event", (e) => say("event", { event: e.event }));
process.on("SIGTERM", () => process.exit(0));
try {
  await client.connect();
} catch (e) {
  say("connect-failed", { message: String(e?.message ?? e) });
}
setInterval(() => {}, 1 << 30);
