// Helpers shared by the GUI tests: one real `myelin` process on free loopback ports with its own
// temporary data directory (stopped by its pid only), polling with deadlines, headless Chromium.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');

const REPO = path.resolve(__dirname, '..', '..');
const TARGET = path.join(REPO, 'target');
const SCREENSHOTS = path.join(TARGET, 'gui-screenshots');
const LOGS = path.join(TARGET, 'gui-logs');
const BINARY = path.resolve(process.env.MYELIN_BINARY || path.join(TARGET, 'release', 'myelin'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** A free TCP port on 127.0.0.1 (the OS picks it; closed again before use). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` (async, returns a truthy value when done) every `intervalMs` until `timeoutMs`. */
async function waitFor(what, check, { timeoutMs = 15_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

let starts = 0;
const running = new Set();
// If the test process ends without stopping a node (a crash, a timeout), take the node down too.
process.on('exit', () => {
  for (const child of running) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/**
 * Starts `myelin serve` named `name` with extra `--set` settings and waits until
 * /actuator/health answers 200. Returns {grpcPort, httpPort, url, pid, logFile, stop(), logTail()}.
 */
async function startServer(name, settings = [], { healthyTimeoutMs = 30_000 } = {}) {
  if (!fs.existsSync(BINARY)) {
    throw new Error(`myelin binary not found at ${BINARY} (cargo build --release -p myelin-cli, or set MYELIN_BINARY)`);
  }
  const [grpcPort, httpPort, internalPort] = [await freePort(), await freePort(), await freePort()];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `myelin-gui-${name}-`));
  fs.mkdirSync(LOGS, { recursive: true });
  const logFile = path.join(LOGS, `${name}-${++starts}.log`);
  const args = [
    'serve',
    '--port', String(grpcPort),
    '--http-port', String(httpPort),
    '--data', path.join(dataDir, 'data'),
    '--set', `axoniq.axonserver.internal-port=${internalPort}`,
    '--set', 'axoniq.axonserver.hostname=localhost',
    '--set', `axoniq.axonserver.name=${name}`,
    ...settings.flatMap((s) => ['--set', s]),
  ];
  fs.writeFileSync(logFile, `### ${BINARY} ${args.join(' ')}\n`);
  const out = fs.openSync(logFile, 'a');
  // cwd = the temp dir, so no axonserver.properties of the build tree is read
  const child = spawn(BINARY, args, { cwd: dataDir, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  running.add(child);
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    running.delete(child);
    resolve(exited);
  }));
  const url = `http://127.0.0.1:${httpPort}`;
  const logTail = (lines = 40) => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch (err) {
      return `(no log: ${err.message})`;
    }
  };
  const stop = async () => {
    if (!exited) {
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 15_000);
      await exit;
      clearTimeout(timer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const server = { name, grpcPort, httpPort, url, pid: child.pid, logFile, stop, logTail, exited: () => exited };
  try {
    await waitFor(`${name} healthy on ${url}/actuator/health`, async () => {
      if (exited) throw new Error(`myelin exited (${JSON.stringify(exited)}); log:\n${logTail()}`);
      const res = await fetch(`${url}/actuator/health`, { signal: AbortSignal.timeout(2000) });
      return res.status === 200;
    }, { timeoutMs: healthyTimeoutMs });
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\nlog ${logFile}:\n${logTail()}`);
  }
  return server;
}

/**
 * Headless Chromium (Debian's package) through playwright-core. The flags keep it off the network
 * (the machine has none but loopback) and let it run as root.
 */
async function launchBrowser() {
  const { chromium } = require('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Full-page screenshot to target/gui-screenshots/<name>.png; returns the path. */
async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 15_000 });
  return file;
}

/** How long one thing may take to appear on a page that polls every 1–2 s. */
const UI_TIMEOUT_MS = 20_000;
const VIEWPORT = { width: 1440, height: 900 };

/**
 * Opens `#/<route>` in a fresh browser context, runs `body(page, context)`, always saves a
 * screenshot named `shot` (noting its file on `t`), and fails on console errors (besides those
 * `allowed` matches).
 */
async function onPage(t, browser, server, route, shot, body, { allowed = () => false } = {}) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location() && msg.location().url;
    // Chromium asks for /favicon.ico when the page names no icon; its 404 is not the GUI's error
    if (where && where.endsWith('/favicon.ico')) return;
    const line = `console.error: ${msg.text()}${where ? ` (${where})` : ''}`;
    if (!allowed(line)) errors.push(line);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  let failed = true;
  try {
    const index = await fetch(`${server.url}/`, { signal: AbortSignal.timeout(5000) });
    if (!index.ok) throw new Error(`GET ${server.url}/ answered ${index.status}: this binary does not serve the GUI`);
    await page.goto(`${server.url}/#/${route}`, { waitUntil: 'load', timeout: UI_TIMEOUT_MS });
    await body(page, context);
    failed = false;
  } catch (err) {
    // what the page logged helps to read the failure
    if (errors.length) err.message += `\nbrowser console:\n${errors.join('\n')}`;
    throw err;
  } finally {
    try {
      const file = await screenshot(page, shot);
      t.diagnostic(`screenshot: ${file}`);
    } catch (err) {
      t.diagnostic(`no screenshot of ${shot}: ${err.message}`);
    }
    await context.close();
  }
  if (!failed) assert.deepEqual(errors, [], `console errors on #/${route}`);
}

module.exports = {
  REPO, BINARY, CHROMIUM, SCREENSHOTS, UI_TIMEOUT_MS, VIEWPORT,
  freePort, waitFor, startServer, launchBrowser, screenshot, onPage,
};
