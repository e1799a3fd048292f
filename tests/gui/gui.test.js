// The web GUI in headless Chromium against the real binary with live traffic (traffic.js): every
// page opens, renders what the traffic produced, reacts to clicks, logs no console error, and is
// saved as a full-page screenshot in target/gui-screenshots/<page>.png. A second node with access
// control on checks the token prompt. See README.md in this directory.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, launchBrowser, screenshot, waitFor, onPage, UI_TIMEOUT_MS } = require('./support');
const traffic = require('./traffic');

const SUITE_TIMEOUT_MS = 300_000;
const TEST_TIMEOUT_MS = 90_000;
const LOADED = 'main#page[data-loaded="1"]';

/** Waits until the page rendered data (`data-loaded="1"`) and shows `route`. */
async function loaded(page, route) {
  await page.waitForSelector(LOADED, { timeout: UI_TIMEOUT_MS });
  assert.equal(await page.getAttribute('main#page', 'data-page'), route);
}

/** Waits until the visible text of `selector` contains every one of `texts` (strings or RegExps). */
async function expectTexts(page, selector, texts, timeoutMs = UI_TIMEOUT_MS) {
  let shown = '';
  const has = (text) => (text instanceof RegExp ? text.test(shown) : shown.includes(text));
  try {
    await waitFor(`${selector} to show ${texts.join(', ')}`, async () => {
      shown = await page.locator(selector).first().innerText({ timeout: 2000 });
      return texts.every(has);
    }, { timeoutMs, intervalMs: 250 });
  } catch (err) {
    const missing = texts.filter((text) => !has(text)).map(String);
    throw new Error(`${selector} does not show ${missing.join(', ')} after ${timeoutMs} ms; it shows:\n${shown.slice(0, 2000)}`);
  }
}

/** Visible `svg.chart` elements in the page body. */
async function expectChart(page) {
  await page.locator('main#page svg.chart').first().waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
}

/** Whether one of a row's cells is `value`, or has it as a whitespace-separated word. */
function cellHas(cells, value) {
  return cells.some((cell) => cell === value || cell.split(/\s+/).includes(value));
}

/** The cells' texts of every `tr.event-row`. */
function eventRows(page) {
  return page.$$eval('tr.event-row', (rows) => rows.map((row) => [...row.cells].map((cell) => cell.innerText.trim())));
}

describe('GUI on a node with traffic', { timeout: SUITE_TIMEOUT_MS }, () => {
  let server;
  let app;
  let browser;

  before(async () => {
    server = await startServer('gui-node');
    app = await traffic.start({ grpcPort: server.grpcPort });
    // enough of everything for every page to have something to show
    await waitFor('traffic: 20 events, a snapshot, 10 commands and 3 queries answered', () => {
      const c = app.counters;
      return c.eventsAppended >= 20 && c.snapshotsAppended >= 1 && c.commandsAnswered >= 10 && c.queriesAnswered >= 3;
    }, { timeoutMs: 30_000 });
    browser = await launchBrowser();
  }, { timeout: 90_000 });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (app) await app.stop();
    if (server) await server.stop();
  }, { timeout: 60_000 });

  it('overview: node, context, application, its command and query; navigation links', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'overview', 'overview', async (page) => {
      await loaded(page, 'overview');
      await expectTexts(page, 'main#page', ['gui-node', 'default', 'gift-card-service', 'IssueCard', 'FindCard']);
      for (const name of ['overview', 'search', 'commands', 'queries', 'processors', 'cluster']) {
        const link = page.locator(`a[data-nav="${name}"]`);
        assert.equal(await link.count(), 1, `one a[data-nav="${name}"]`);
        assert.equal(await link.getAttribute('href'), `#/${name}`);
      }
      await page.locator('a[data-nav="cluster"]').click();
      await page.waitForSelector('main#page[data-page="cluster"]', { timeout: UI_TIMEOUT_MS });
      await page.locator('a[data-nav="overview"]').click();
      await page.waitForSelector(`main#page[data-page="overview"]`, { timeout: UI_TIMEOUT_MS });
    });
  });

  it('search: recent events, the events of one aggregate, its snapshots', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'search', 'search', async (page) => {
      await page.locator('button#search-run').click();
      await loaded(page, 'search');
      await waitFor('tr.event-row with payload type GiftCardIssued', async () => {
        const rows = await eventRows(page);
        return rows.some((cells) => cellHas(cells, 'GiftCardIssued'));
      }, { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 });

      // a card with a few events and no snapshot yet (one comes after the 5th): all of its
      // events, and nothing else, once filtered
      const cards = app.cards().filter((c) => c.cardId !== 'card-1').sort((a, b) => b.events - a.events);
      const card = cards.find((c) => c.events < 5) || cards[cards.length - 1];
      await page.locator('input#search-aggregate').fill(card.cardId);
      await page.locator('input#search-payload-type').fill('');
      await page.locator('button#search-run').click();
      let rows = [];
      await waitFor(`only ${card.cardId}'s events (at least ${card.events})`, async () => {
        rows = await eventRows(page);
        return rows.length >= card.events && rows.every((cells) => cellHas(cells, card.cardId));
      }, { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 }).catch((err) => {
        throw new Error(`${err.message}\nrows: ${JSON.stringify(rows.slice(0, 10))}`);
      });
      assert.ok(rows.some((cells) => cellHas(cells, 'GiftCardIssued')), `${card.cardId} has its GiftCardIssued`);

      // card-1 has a snapshot (payload type GiftCard, not an event's type) after its 5th event
      await page.locator('input#search-aggregate').fill('card-1');
      await page.locator('select#search-kind').selectOption('snapshots');
      await page.locator('button#search-run').click();
      await waitFor("card-1's snapshots", async () => {
        rows = await eventRows(page);
        return rows.length >= 1 && rows.every((cells) => cellHas(cells, 'card-1') && cellHas(cells, 'GiftCard')
          && !cells.some((cell) => /GiftCard(Issued|Redeemed)/.test(cell)));
      }, { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 }).catch((err) => {
        throw new Error(`${err.message}\nrows: ${JSON.stringify(rows.slice(0, 10))}`);
      });
    });
  });

  it('commands: IssueCard and RedeemCard with a chart', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'commands', 'commands', async (page) => {
      await loaded(page, 'commands');
      await expectTexts(page, 'main#page', ['IssueCard', 'RedeemCard', 'gui-traffic-1']);
      await expectChart(page);
    });
  });

  it('queries: FindCard with a chart', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'queries', 'queries', async (page) => {
      await loaded(page, 'queries');
      await expectTexts(page, 'main#page', ['FindCard', 'gui-traffic-1']);
      await expectChart(page);
    });
  });

  it('processors: card-summary paused, started, split and merged from the page', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'processors', 'processors', async (page) => {
      await loaded(page, 'processors');
      const section = page.locator('section.processor[data-processor="card-summary"]');
      await section.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
      const status = section.locator('.processor-status');
      const segments = section.locator('tr.segment');
      const expectStatus = (word) => waitFor(`.processor-status to read "${word}"`, async () =>
        (await status.innerText({ timeout: 2000 })).trim().toLowerCase() === word, { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 });
      const expectSegments = (n) => waitFor(`${n} tr.segment rows`, async () => (await segments.count()) === n,
        { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250 });

      await expectStatus('running');
      await expectSegments(2);
      await expectTexts(page, 'section.processor[data-processor="card-summary"]', ['gui-traffic-1']);
      await section.locator('tr.segment[data-segment="0"]').waitFor({ timeout: UI_TIMEOUT_MS });

      await section.locator('button[data-action="pause"]').click();
      await expectStatus('paused');
      await waitFor('the application to be paused', () => !app.processor().running);
      await waitFor('an .action-result', async () => (await page.locator('.action-result').allInnerTexts()).some((s) => s.trim()));

      await section.locator('button[data-action="start"]').click();
      await expectStatus('running');
      await waitFor('the application to run', () => app.processor().running);
      await expectSegments(2);

      await section.locator('button[data-action="split"]').click();
      await expectSegments(3);
      assert.equal(app.processor().segments.length, 3);

      await section.locator('button[data-action="merge"]').click();
      await expectSegments(2);
      assert.equal(app.processor().segments.length, 2);
    });
  });

  it('cluster: gui-node is the leader', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await onPage(t, browser, server, 'cluster', 'cluster', async (page) => {
      await loaded(page, 'cluster');
      // roles are LEADER/FOLLOWER in the API, words on the page ("Leader"); CSS may change the case
      await expectTexts(page, 'main#page', ['gui-node', /\bleader\b/i]);
      // the node's own row in the nodes table names its role
      const role = await page.$eval('main#page tr.cluster-node[data-node="gui-node"] .role', (e) => e.innerText);
      assert.match(role, /^leader$/i, `role shown for gui-node: ${role}`);
    });
  });

  it('the traffic ran without errors meanwhile', () => {
    const c = app.counters;
    assert.equal(c.appendErrors + c.commandErrors + c.queryErrors + c.streamErrors, 0, `${JSON.stringify(c)}`);
  });
});

describe('GUI with access control on', { timeout: SUITE_TIMEOUT_MS }, () => {
  const ADMIN_TOKEN = 'gui-secret';
  const APP_TOKEN = 'gui-app-token';
  let server;
  let app;
  let browser;

  before(async () => {
    server = await startServer('gui-secure-node', [
      'axoniq.axonserver.accesscontrol.enabled=true',
      `axoniq.axonserver.accesscontrol.admin-token=${ADMIN_TOKEN}`,
      `axoniq.axonserver.accesscontrol.token=${APP_TOKEN}`,
    ]);
    app = await traffic.start({ grpcPort: server.grpcPort, token: APP_TOKEN });
    browser = await launchBrowser();
  }, { timeout: 90_000 });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (app) await app.stop();
    if (server) await server.stop();
  }, { timeout: 60_000 });

  it('asks for a token, then shows the overview', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    // the calls made before the token is known answer 401/403, which Chromium logs as errors
    const allowed = (line) => /status of 40[13]/.test(line);
    await onPage(t, browser, server, 'overview', 'overview-with-token', async (page) => {
      const form = page.locator('form#login');
      await form.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
      assert.equal(await page.locator(LOADED).count(), 0, 'no data shown before the token is given');
      await form.locator('input#token').fill(ADMIN_TOKEN);
      const file = await screenshot(page, 'login');
      t.diagnostic(`screenshot: ${file}`);
      const submit = form.locator('button[type="submit"], input[type="submit"]');
      if (await submit.count()) await submit.first().click();
      else await form.evaluate((f) => f.requestSubmit());
      await loaded(page, 'overview');
      await expectTexts(page, 'main#page', [server.name, 'gift-card-service']);
      const stored = await page.evaluate(() => Object.values(sessionStorage));
      assert.ok(stored.includes(ADMIN_TOKEN), `the token is kept in sessionStorage (${JSON.stringify(stored)})`);
      await form.waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
    }, { allowed });
  });
});
