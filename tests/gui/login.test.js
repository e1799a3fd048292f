// Signing in to the web GUI with a user's password when access control is on: the sign-in form,
// wrong passwords and the lockout, the user and "Log out" in the top bar, control calls that carry
// the CSRF header, a monitor-only user whose control action is refused inline, logging out and a
// session that ended elsewhere. Also: with access control off there is no sign-in at all.
// Screenshots go to target/gui-screenshots/login-*.png. See README.md in this directory.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const support = require('./support');

const { startServer, launchBrowser, screenshot, waitFor, UI_TIMEOUT_MS } = support;
const traffic = require('./traffic');

const SUITE_TIMEOUT_MS = 300_000;
const TEST_TIMEOUT_MS = 90_000;
const LOADED = 'main#page[data-loaded="1"]';
const PROCESSOR = 'section.processor[data-processor="card-summary"]';
// calls made without (valid) credentials answer 401/403 (429 when locked out); Chromium logs those
const AUTH_ERRORS = (line) => /status of (401|403|429)\b/.test(line);

/** `support.onPage` where refused calls (logged by Chromium) are expected. */
function onPage(t, browser, server, route, shot, body, options = {}) {
  return support.onPage(t, browser, server, route, shot, body, { allowed: AUTH_ERRORS, ...options });
}

async function shoot(t, page, name) {
  try {
    t.diagnostic(`screenshot: ${await screenshot(page, name)}`);
  } catch (err) {
    t.diagnostic(`no screenshot of ${name}: ${err.message}`);
  }
}

/** Fills the sign-in form (which must be up) and submits it; returns the answer of POST /login. */
async function submitLogin(page, user, password) {
  await page.locator('form#login').waitFor({ state: 'visible' });
  await page.locator('input#login-user').fill(user);
  await page.locator('input#login-password').fill(password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/login'),
    page.locator('button#login-submit').click(),
  ]);
  return response;
}

/** Signs in and waits until the form is gone, `user` is named in the top bar and the page loaded. */
async function signIn(page, user, password) {
  const response = await submitLogin(page, user, password);
  assert.equal(response.status(), 200, `POST /login as ${user}`);
  await page.locator('form#login').waitFor({ state: 'hidden' });
  await waitFor(`#user-name to read ${user}`, async () => (await page.locator('#user-name').innerText({ timeout: 2000 })).trim() === user,
    { timeoutMs: UI_TIMEOUT_MS, intervalMs: 100 });
  assert.ok(await page.locator('button#logout').isVisible(), 'a Log out button once signed in');
  await page.waitForSelector(LOADED);
}

/** The visible text of `#login-error` once a sign-in attempt has been answered. */
async function loginErrorText(page) {
  await page.waitForFunction(() => !document.querySelector('#login-submit').disabled && !document.querySelector('#login-error').hidden);
  return (await page.locator('#login-error').innerText()).trim();
}

/** Waits until the visible text of `selector` contains `text`. */
async function expectText(page, selector, text) {
  let shown = '';
  await waitFor(`${selector} to show ${text}`, async () => {
    shown = await page.locator(selector).first().innerText({ timeout: 2000 });
    return shown.includes(text);
  }, { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 }).catch((err) => {
    throw new Error(`${err.message}; it shows:\n${shown.slice(0, 1000)}`);
  });
}

const cookieHeader = (cookies) => cookies.map((c) => `${c.name}=${c.value}`).join('; ');

describe('GUI sign-in with access control on', { timeout: SUITE_TIMEOUT_MS }, () => {
  const ADMIN_TOKEN = crypto.randomBytes(16).toString('hex');
  const APP_TOKEN = crypto.randomBytes(16).toString('hex');
  const OPS = { user: 'ops', password: crypto.randomBytes(12).toString('base64url') };
  const WATCHER = { user: 'watcher', password: crypto.randomBytes(12).toString('base64url') };
  let server;
  let app;
  let browser;

  /** POST /v1/users with the admin token. */
  async function createUser({ user, password }, roles) {
    const res = await fetch(`${server.url}/v1/users`, {
      method: 'POST',
      headers: { 'AxonIQ-Access-Token': ADMIN_TOKEN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ userName: user, password, roles }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.ok(res.ok, `POST /v1/users ${user}: ${res.status} ${await res.text()}`);
  }

  before(async () => {
    server = await startServer('gui-login-node', [
      'axoniq.axonserver.accesscontrol.enabled=true',
      `axoniq.axonserver.accesscontrol.admin-token=${ADMIN_TOKEN}`,
      `axoniq.axonserver.accesscontrol.token=${APP_TOKEN}`,
    ]);
    await createUser(OPS, ['ADMIN@_admin']);
    await createUser(WATCHER, ['MONITOR@default']);
    app = await traffic.start({ grpcPort: server.grpcPort, token: APP_TOKEN });
    browser = await launchBrowser();
  }, { timeout: 90_000 });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (app) await app.stop();
    if (server) await server.stop();
  }, { timeout: 60_000 });

  it('shows the sign-in form, refuses a wrong password, then shows the overview and the user', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'overview', 'login-signed-in', async (page, context) => {
      await page.locator('form#login').waitFor({ state: 'visible' });
      assert.equal(await page.locator(LOADED).count(), 0, 'no data shown before signing in');
      assert.ok(await page.locator('button#logout').isHidden(), 'no Log out button before signing in');
      // the fields have labels
      assert.equal(await page.getByLabel('User name', { exact: true }).getAttribute('id'), 'login-user');
      assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('id'), 'login-password');
      await shoot(t, page, 'login-form');

      const wrong = await submitLogin(page, OPS.user, `${OPS.password}-wrong`);
      assert.equal(wrong.status(), 403);
      assert.match(await loginErrorText(page), /wrong user name or password/i);
      assert.equal(await page.locator(LOADED).count(), 0, 'still no data after a wrong password');
      await shoot(t, page, 'login-wrong-password');

      await signIn(page, OPS.user, OPS.password);
      await expectText(page, 'main#page', server.name);
      const cookies = await context.cookies();
      const sessionCookie = cookies.find((c) => c.name === 'MYELIN_SESSION');
      assert.ok(sessionCookie && sessionCookie.httpOnly, `an HttpOnly MYELIN_SESSION cookie (${JSON.stringify(cookies)})`);
      assert.ok(cookies.some((c) => c.name === 'XSRF-TOKEN'), 'an XSRF-TOKEN cookie');
      assert.deepEqual(await page.evaluate(() => Object.values(sessionStorage)), [], 'no token kept for a password sign-in');
    });
  });

  it('control actions of an admin user carry the CSRF header and work', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'processors', 'login-admin-processors', async (page, context) => {
      await signIn(page, OPS.user, OPS.password);
      const section = page.locator(PROCESSOR);
      await section.waitFor({ state: 'visible' });
      const status = section.locator('.processor-status');
      const expectStatus = (word) => waitFor(`.processor-status to read "${word}"`, async () =>
        (await status.innerText({ timeout: 2000 })).trim().toLowerCase() === word, { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 });
      await expectStatus('running');

      const [pause] = await Promise.all([
        page.waitForRequest((r) => r.method() === 'PATCH' && new URL(r.url()).pathname.endsWith('/pause')),
        section.locator('button[data-action="pause"]').click(),
      ]);
      const xsrf = (await context.cookies()).find((c) => c.name === 'XSRF-TOKEN');
      assert.equal((await pause.allHeaders())['x-xsrf-token'], xsrf && xsrf.value, 'the PATCH echoes the XSRF-TOKEN cookie');
      assert.equal((await pause.response()).status(), 200);
      await expectStatus('paused');
      await waitFor('the application to be paused', () => !app.processor().running);

      // the same call without the header is refused: the session alone is not enough
      const bare = await page.evaluate((u) => fetch(u, { method: 'PATCH' }).then((r) => r.status), pause.url());
      assert.equal(bare, 403, 'a PATCH without X-XSRF-TOKEN');

      await section.locator('button[data-action="start"]').click();
      await expectStatus('running');
      await waitFor('the application to run', () => app.processor().running);
      assert.ok(await page.locator('form#login').isHidden(), 'no sign-in form during control actions');
    });
  });

  it('a monitor-only user sees the processors, and a control action is refused inline', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'processors', 'login-monitor-refused', async (page) => {
      await signIn(page, WATCHER.user, WATCHER.password);
      const section = page.locator(PROCESSOR);
      await section.waitFor({ state: 'visible' });
      const [pause] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === 'PATCH' && new URL(r.url()).pathname.endsWith('/pause')),
        section.locator('button[data-action="pause"]').click(),
      ]);
      assert.equal(pause.status(), 403);
      const result = section.locator('.action-result.err');
      await result.waitFor({ state: 'visible' });
      await expectText(page, `${PROCESSOR} .action-result.err`, 'AXONIQ-1001');
      assert.match(await result.innerText(), /forbidden/i);
      await page.locator('.toast', { hasText: 'AXONIQ-1001' }).first().waitFor({ state: 'visible' });
      assert.ok(await page.locator('form#login').isHidden(), 'a refused action does not ask to sign in again');
      assert.equal((await page.locator('#user-name').innerText()).trim(), WATCHER.user);
      assert.ok(app.processor().running, 'the processor still runs');
    });
  });

  it('log out returns to the sign-in form and the session no longer works', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'overview', 'login-signed-out', async (page, context) => {
      await signIn(page, OPS.user, OPS.password);
      const before = await context.cookies();
      assert.ok(before.some((c) => c.name === 'MYELIN_SESSION'));

      const [logout] = await Promise.all([
        page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/logout'),
        page.locator('button#logout').click(),
      ]);
      assert.equal((await logout.response()).status(), 204, 'POST /logout with the CSRF header');
      await page.locator('form#login').waitFor({ state: 'visible' });
      assert.equal(await page.locator(LOADED).count(), 0, 'the page shows no data once signed out');
      assert.ok(await page.locator('#user-name').isHidden());
      assert.ok(await page.locator('button#logout').isHidden());
      const after = await context.cookies();
      assert.deepEqual(after.filter((c) => c.name === 'MYELIN_SESSION' || c.name === 'XSRF-TOKEN'), [], 'both cookies cleared');

      const res = await fetch(`${server.url}/v1/public/user`, { headers: { Cookie: cookieHeader(before) }, signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 403, 'the old session cookie is refused');
      assert.equal(res.headers.get('AxonIQ-ErrorCode'), 'AXONIQ-1001');

      await page.reload({ waitUntil: 'load' });
      await page.locator('form#login').waitFor({ state: 'visible' });
    });
  });

  it('a session that ended elsewhere brings back the sign-in form', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'overview', 'login-session-ended', async (page, context) => {
      await signIn(page, OPS.user, OPS.password);
      const cookies = await context.cookies();
      const xsrf = cookies.find((c) => c.name === 'XSRF-TOKEN').value;
      const res = await fetch(`${server.url}/logout`, {
        method: 'POST', headers: { Cookie: cookieHeader(cookies), 'X-XSRF-TOKEN': xsrf }, signal: AbortSignal.timeout(5000),
      });
      assert.equal(res.status, 204);
      // the next poll answers AXONIQ-1001
      await page.locator('form#login').waitFor({ state: 'visible' });
      await expectText(page, '#login-message', 'session has ended');
      await signIn(page, OPS.user, OPS.password);
      await expectText(page, 'main#page', server.name);
    });
  });

  it('repeated wrong passwords lock the user out for a while', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'overview', 'login-locked-out', async (page) => {
      let text = '';
      for (let attempt = 1; attempt <= 8; attempt++) {
        const res = await submitLogin(page, 'intruder', `guess-${attempt}`);
        text = await loginErrorText(page);
        if (res.status() === 429) break;
        assert.equal(res.status(), 403, `attempt ${attempt}`);
      }
      assert.match(text, /^Too many failed logins, try again in \d+ s$/);
    });
  });
});

describe('GUI with access control off', { timeout: SUITE_TIMEOUT_MS }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('gui-open-node');
    browser = await launchBrowser();
  }, { timeout: 90_000 });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  }, { timeout: 60_000 });

  it('shows no sign-in form, user or Log out button', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'overview', 'login-not-needed', async (page) => {
      await page.waitForSelector(LOADED);
      await expectText(page, 'main#page', server.name);
      for (const sel of ['form#login', '#user-name', 'button#logout']) {
        assert.ok(await page.locator(sel).isHidden(), `${sel} is hidden`);
      }
    }, { allowed: () => false });
  });
});
