// A SIP-over-WebSocket client process driven by the sipedge interop tests.
//
//   node agent.mjs jssip-browser | sipjs-node
//
// Commands arrive on stdin, one JSON object per line: {"id": N, "cmd": NAME, "arg": ...}
// with NAME one of start (arg: client options), call (arg: target URI), hangup, stop,
// close_tab (jssip-browser: close the page as a user closing the tab), drop (sipjs-node:
// reset the WebSocket's TCP connection) and exit. Each gets
// {"reply": N, "ok": true|false, "error": ...} on stdout; every client event is a line
// {"ev": NAME, "t": ms since start, ...}. Diagnostics (JsSIP/SIP.js debug output, the
// browser console) go to stderr. The process exits on "exit" or at the end of stdin.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const started = Date.now();

function emit(event) {
  process.stdout.write(JSON.stringify({ ...event, t: Date.now() - started }) + '\n');
}

function log(text) {
  process.stderr.write(`[${Date.now() - started} ms] ${text}\n`);
}

// The on-box Chromium flags: no sandbox (root in a VM), fake media devices, and nothing
// that makes Chromium talk to the network beyond loopback (no DNS for update or sign-in
// hosts, no WebRTC mDNS, no component updates, no QUIC).
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--ignore-certificate-errors', '--allow-file-access-from-files',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
  '--dns-prefetch-disable',
  '--disable-features=WebRtcHideLocalIpsWithMdns,OptimizationHints,MediaRouter,Translate',
  '--disable-default-apps', '--disable-extensions', '--disable-domain-reliability', '--no-pings',
  '--disable-client-side-phishing-detection', '--disable-breakpad', '--metrics-recording-only',
  '--password-store=basic', '--use-mock-keychain',
];

// Each driver: start(opts), command(name, arg) and close().
async function nodeSipJs() {
  const { WebSocket } = await import('ws');
  globalThis.WebSocket = WebSocket;
  const { createClient } = await import('./sipjs_client.mjs');
  let client = null;
  return {
    async start(opts) { client = createClient(emit, opts); },
    async command(name, arg) { return client[name](arg); },
    async close() {},
  };
}

async function browserJsSIP() {
  const { chromium } = require('playwright-core');
  const profile = mkdtempSync(path.join(process.env.SIPEDGE_TMP || tmpdir(), 'chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SIPEDGE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true,
    timeout: 30000,
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => log(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log(`[pageerror] ${e}`));
  await page.exposeFunction('sipedgeEmit', (event) => emit(event));
  await page.goto(pathToFileURL(path.join(here, 'page.html')).href);
  emit({ ev: 'browser', version: context.browser() ? context.browser().version() : null });
  let tabOpen = true;
  return {
    async start(opts) { await page.evaluate((o) => window.sipedgeStart(o), opts); },
    async command(name, arg) {
      if (name === 'close_tab') {
        tabOpen = false;
        await page.close({ runBeforeUnload: false });
        emit({ ev: 'tabClosed' });
        return null;
      }
      return page.evaluate(([n, a]) => window.sipedgeCommand(n, a), [name, arg]);
    },
    async close() {
      if (tabOpen) await page.close().catch(() => {});
      await context.close().catch((e) => log(`context close: ${e}`));
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// A command's result as JSON data; library objects (a SIP.js request...) become null.
function plain(value) {
  try {
    return JSON.parse(JSON.stringify(value ?? null));
  } catch {
    return null;
  }
}

const DRIVERS = { 'jssip-browser': browserJsSIP, 'sipjs-node': nodeSipJs };

async function main() {
  const kind = process.argv[2];
  if (!DRIVERS[kind]) {
    log(`usage: node agent.mjs ${Object.keys(DRIVERS).join('|')}`);
    process.exit(2);
  }
  const driver = await DRIVERS[kind]();
  emit({ ev: 'ready', kind });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const { id, cmd, arg } = JSON.parse(line);
    if (cmd === 'exit') break;
    try {
      const value = cmd === 'start' ? await driver.start(arg) : await driver.command(cmd, arg);
      process.stdout.write(JSON.stringify({ reply: id, ok: true, value: plain(value) }) + '\n');
    } catch (err) {
      log(`command ${cmd} failed: ${err && err.stack ? err.stack : err}`);
      process.stdout.write(JSON.stringify({ reply: id, ok: false, error: String(err) }) + '\n');
    }
  }
  await driver.close();
  process.exit(0);
}

main().catch((err) => {
  log(`agent failed: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
