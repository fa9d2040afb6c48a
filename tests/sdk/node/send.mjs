// Send a few calls through a stock SDK to MAGPIE_URL; print the messageIds it generated.
import { Analytics } from "@segment/analytics-node";
import RudderAnalytics from "@rudderstack/rudder-sdk-node";

const [sdk, url, writeKey, runId] = process.argv.slice(2);

async function segment() {
  const analytics = new Analytics({ writeKey, host: url, maxEventsInBatch: 10, flushInterval: 200 });
  analytics.identify({ userId: `node-${runId}`, traits: { email: "node@example.com" } });
  analytics.track({ userId: `node-${runId}`, event: "Node Order", properties: { total: 7 } });
  analytics.page({ userId: `node-${runId}`, name: "Pricing" });
  await analytics.closeAndFlush({ timeout: 10000 });
}

async function rudder() {
  const client = new RudderAnalytics(writeKey, { dataPlaneUrl: url, flushAt: 10, flushInterval: 200 });
  client.identify({ userId: `rudder-${runId}`, traits: { email: "rs@example.com" } });
  client.track({ userId: `rudder-${runId}`, event: "Rudder Order", properties: { total: 9 } });
  await client.flush();
}

await (sdk === "segment" ? segment() : rudder());
console.log("sent");
