// The traffic generator against the real binary, checked over gRPC only (no browser): the server
// sees its processor reports, its appends land, its commands and queries come back answered by its
// own handlers, and processor instructions from the admin service reach it and are obeyed.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, waitFor } = require('./support');
const traffic = require('./traffic');

const SUITE_TIMEOUT_MS = 120_000;

function unary(client, method, request, md) {
  return new Promise((resolve, reject) =>
    client[method](request, md, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

function collect(call) {
  return new Promise((resolve, reject) => {
    const items = [];
    call.on('data', (item) => items.push(item));
    call.on('error', reject);
    call.on('end', () => resolve(items));
  });
}

describe('traffic generator against myelin', { timeout: SUITE_TIMEOUT_MS }, () => {
  let server;
  let app;
  let admin;
  let events;
  const md = () => traffic.axonMetadata({ context: 'default' });

  const processors = () => collect(admin.GetAllEventProcessors({}, md(), { deadline: Date.now() + 10_000 }));
  const cardSummary = async () => {
    const all = await processors();
    return all.find((p) => p.identifier.processor_name === 'card-summary');
  };
  const identifier = { processor_name: 'card-summary', token_store_identifier: 'ts-gui', context_name: 'default' };

  before(async () => {
    server = await startServer('traffic-node');
    app = await traffic.start({ grpcPort: server.grpcPort });
    admin = traffic.client('EventProcessorAdminService', { grpcPort: server.grpcPort });
    events = traffic.client('EventStore', { grpcPort: server.grpcPort });
  }, { timeout: 60_000 });

  after(async () => {
    if (app) await app.stop();
    for (const c of [admin, events]) if (c) c.close();
    if (server) await server.stop();
  }, { timeout: 30_000 });

  it('reports its processor, and the server lists it', async () => {
    const p = await waitFor('card-summary in GetAllEventProcessors', cardSummary);
    assert.equal(p.mode, 'Pooled Streaming');
    assert.equal(p.identifier.token_store_identifier, 'ts-gui');
    assert.equal(p.client_instance.length, 1);
    const instance = p.client_instance[0];
    assert.equal(instance.client_id, 'gui-traffic-1');
    assert.equal(instance.isRunning, true);
    assert.deepEqual(instance.claimed_segment.map((s) => [s.id, s.one_part_of]).sort(), [[0, 2], [1, 2]]);
  });

  it('appends events: the last token grows and the processor tracks them', async () => {
    const first = (await unary(events, 'GetLastToken', {}, md())).token;
    await waitFor('GetLastToken to grow by 5', async () => (await unary(events, 'GetLastToken', {}, md())).token >= first + 5);
    await waitFor('the processor to track the appended events', () => app.processor().lastToken >= first + 5);
    const card = app.cards()[0];
    const highest = await unary(events, 'ReadHighestSequenceNr', { aggregate_id: card.cardId, from_sequence_nr: 0 }, md());
    assert.ok(highest.to_sequence_nr >= card.events - 1, `${card.cardId}: ${highest.to_sequence_nr} vs ${card.events}`);
    assert.equal(app.counters.appendErrors, 0, app.counters.lastError);
  });

  it('its dispatched commands and queries come back answered by its own handlers', async () => {
    await waitFor('10 commands and 3 queries answered', () =>
      app.counters.commandsAnswered >= 10 && app.counters.queriesAnswered >= 3);
    const c = app.counters;
    assert.ok(c.commandsHandled >= c.commandsAnswered, JSON.stringify(c));
    assert.ok(c.queriesHandled >= c.queriesAnswered, JSON.stringify(c));
    assert.equal(c.commandErrors, 0, c.lastError);
    assert.equal(c.queryErrors, 0, c.lastError);
  });

  it('obeys pause, start, split and merge from the admin service', async () => {
    await waitFor('card-summary known', cardSummary);
    await unary(admin, 'PauseEventProcessor', identifier, md());
    await waitFor('the app paused', () => !app.processor().running);
    await waitFor('the server to see it paused', async () => (await cardSummary()).client_instance[0].isRunning === false);

    await unary(admin, 'StartEventProcessor', identifier, md());
    await waitFor('the app running', () => app.processor().running);
    await waitFor('the server to see it running with 2 segments', async () => {
      const i = (await cardSummary()).client_instance[0];
      return i.isRunning && i.claimed_segment.length === 2;
    });

    await unary(admin, 'SplitEventProcessor', identifier, md());
    await waitFor('3 segments in the app', () => app.processor().segments.length === 3);
    await waitFor('3 segments on the server', async () => (await cardSummary()).client_instance[0].claimed_segment.length === 3);

    await unary(admin, 'MergeEventProcessor', identifier, md());
    await waitFor('2 segments in the app', () => app.processor().segments.length === 2);

    assert.ok(app.counters.instructionResults >= 4, JSON.stringify(app.counters.instructions));
  });
});
