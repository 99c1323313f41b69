// Drive the sipedge dashboard in headless Chromium (playwright-core, Debian's Chromium):
//
//   node dashboard.mjs API_URL CALL_ID OUT_DIR
//
// Opens the overview and waits until it shows CALL_ID (a call placed a moment before),
// visits registrations, calls and bans, then the call view of CALL_ID: reads the ladder's
// arrows in order and clicks the INVITE to show its text. Saves a full-page screenshot of
// each page in OUT_DIR and prints one JSON line: {cards, labels, detail, pages, errors}.
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const [url, callId, outDir] = process.argv.slice(2);

// Loopback only: no DNS for anything else, no background traffic.
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
  '--dns-prefetch-disable', '--disable-extensions', '--disable-domain-reliability',
  '--no-pings', '--disable-breakpad', '--metrics-recording-only', '--password-store=basic',
];

const errors = [];
const browser = await chromium.launch({
  executablePath: process.env.SIPEDGE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ARGS,
  timeout: 30000,
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  const shot = (name) => page.screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
  const ready = (name) => page.waitForFunction((n) => document.body.dataset.ready === n, name, { timeout: 10000 });

  await page.goto(`${url}/#/overview`);
  await page.waitForFunction(
    (id) => document.body.dataset.ready === 'overview' && document.getElementById('view').textContent.includes(id),
    callId, { timeout: 15000 },
  );
  const cards = await page.$$eval('.card', (els) => Object.fromEntries(
    els.map((e) => [e.dataset.metric, e.querySelector('.value').textContent])));
  await shot('overview');

  const pages = {};
  for (const name of ['registrations', 'calls', 'bans']) {
    await page.goto(`${url}/#/${name}`);
    await ready(name);
    pages[name] = await page.textContent('#view');
    await shot(name);
  }

  await page.goto(`${url}/#/call/${encodeURIComponent(callId)}`);
  await page.waitForSelector('svg.ladder g.msg', { timeout: 10000 });
  const labels = await page.$$eval('svg.ladder g.msg', (gs) => gs.map((g) => g.dataset.label));
  await page.click('svg.ladder g.msg[data-label="INVITE"]');
  const detail = await page.textContent('#message');
  await shot('call');
  process.stdout.write(`${JSON.stringify({ cards, labels, detail, pages, errors })}\n`);
} finally {
  await browser.close();
}
