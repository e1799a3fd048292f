#!/usr/bin/env node
// A gift-card application that talks to Myelin the way an Axon Framework 4 application does, over
// the repository's own proto/*.proto files: it registers on the platform stream and reports its
// event processor "card-summary" every 500 ms (and obeys pause/start/split/merge/release from the
// server), handles the commands IssueCard/RedeemCard and the query FindCard on its handler streams,
// tracks the event stream for its processor, and keeps appending events (and now and then a
// snapshot) while dispatching commands and queries that its own handlers answer, so the server
// routes real traffic.
//
//   node traffic.js --port 8124 [--host 127.0.0.1] [--token T] [--context default] [--duration 600]
//
// As a module: `const traffic = await require('./traffic').start({grpcPort, token})`, then
// `traffic.counters`, `traffic.processor()`, `traffic.cards()`, `await traffic.stop()`.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');
const PROCESSOR = 'card-summary';
const HEARTBEAT_MS = 10_000;
const PROCESSOR_INFO_MS = 500;
const RECLAIM_AFTER_MS = 2_000;
const COMMAND_PERMITS = 1000;
const QUERY_PERMITS = 1000;
const TRACKING_PERMITS = 1000;
const CALL_DEADLINE_MS = 10_000;
const RECONNECT_MS = 1_000;

let protos;

/** The generated service constructors, loaded once from proto/*.proto. */
function loadProtos() {
  if (!protos) {
    const definition = protoLoader.loadSync(
      ['control.proto', 'command.proto', 'query.proto', 'event.proto', 'admin.proto'],
      { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true },
    );
    const pkg = grpc.loadPackageDefinition(definition).io.axoniq.axonserver.grpc;
    protos = {
      PlatformService: pkg.control.PlatformService,
      CommandService: pkg.command.CommandService,
      QueryService: pkg.query.QueryService,
      EventStore: pkg.event.EventStore,
      EventProcessorAdminService: pkg.admin.EventProcessorAdminService,
    };
  }
  return protos;
}

/** Metadata every call carries: the context, and the access token when there is one. */
function axonMetadata({ context = 'default', token, clientId } = {}) {
  const md = new grpc.Metadata();
  md.set('axoniq-context', context);
  if (token) md.set('axoniq-access-token', token);
  if (clientId) md.set('axoniq-clientid', clientId);
  return md;
}

/** Creates a client of one of the services in `loadProtos()` for `host:port`. */
function client(service, { host = '127.0.0.1', grpcPort }) {
  const Ctor = loadProtos()[service];
  return new Ctor(`${host}:${grpcPort}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
  });
}

const uuid = () => crypto.randomUUID();
const json = (value) => Buffer.from(JSON.stringify(value), 'utf8');
const text = (value) => ({ text_value: String(value) });

function newCounters() {
  return {
    eventsAppended: 0,
    appendErrors: 0,
    appendConflicts: 0, // sequence conflicts (cards left by an earlier run), then continued
    snapshotsAppended: 0,
    snapshotErrors: 0,
    eventsTracked: 0,
    commandsDispatched: 0,
    commandsAnswered: 0, // dispatches that came back with a response without error
    commandErrors: 0,
    commandsHandled: 0, // commands our handler stream received and answered
    queriesDispatched: 0,
    queriesAnswered: 0,
    queryErrors: 0,
    queriesHandled: 0,
    processorInfosSent: 0,
    instructions: {}, // per instruction kind received on the platform stream
    instructionResults: 0,
    acksSent: 0,
    acksReceived: 0,
    nacksReceived: 0,
    heartbeatsSent: 0,
    reconnects: 0,
    streamErrors: 0,
    lastError: null,
  };
}

class Traffic {
  constructor(options) {
    this.options = {
      host: '127.0.0.1',
      context: 'default',
      clientId: 'gui-traffic-1',
      component: 'gift-card-service',
      version: '4.13.0',
      intervalMs: [100, 200],
      ...options,
    };
    if (!this.options.grpcPort) throw new Error('traffic: grpcPort is required');
    this.counters = newCounters();
    this.stopped = false;
    this.timers = new Set();
    this.log = this.options.log || (() => {});
    // The simulated processor: a pooled streaming processor with two segments at the start.
    this.proc = {
      running: true,
      segments: [{ id: 0, onePartOf: 2 }, { id: 1, onePartOf: 2 }],
      lastToken: -1, // last event it processed (its tracking token), -1 before any
    };
    this.cardSeq = new Map(); // card id -> next aggregate sequence number
    this.cardCount = 0;
    this.ticks = 0;
    this.appending = false;
    this.pendingAcks = new Map(); // instruction id -> resolve, for our subscriptions
    this.streams = {};
  }

  md() {
    return axonMetadata({ context: this.options.context, token: this.options.token, clientId: this.options.clientId });
  }

  deadline(ms = CALL_DEADLINE_MS) {
    return { deadline: Date.now() + ms };
  }

  timer(fn, ms, repeat = false) {
    const handle = repeat
      ? setInterval(() => { if (!this.stopped) fn(); }, ms)
      : setTimeout(() => { this.timers.delete(handle); if (!this.stopped) fn(); }, ms);
    this.timers.add(handle);
    return handle;
  }

  noteError(where, err) {
    this.counters.lastError = `${where}: ${err && (err.details || err.message || err)}`;
    this.log(`[traffic] ${this.counters.lastError}`);
  }

  async startAll(readyTimeoutMs = 15_000) {
    const o = this.options;
    this.platform = client('PlatformService', o);
    this.commands = client('CommandService', o);
    this.queries = client('QueryService', o);
    this.events = client('EventStore', o);
    await this.discover(readyTimeoutMs);
    const subscribed = [this.openPlatform(), this.openCommandStream(), this.openQueryStream()];
    this.openTracking();
    this.timer(() => this.sendProcessorInfo(), PROCESSOR_INFO_MS, true);
    this.timer(() => this.sendHeartbeat(), HEARTBEAT_MS, true);
    await withDeadline(Promise.all(subscribed.flat()), readyTimeoutMs, 'command/query subscriptions not acknowledged');
    this.scheduleTick();
    if (o.durationMs) this.timer(() => this.stop(), o.durationMs);
    return this;
  }

  /** GetPlatformServer, as the connector does before anything else; retried until the deadline. */
  async discover(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const info = await new Promise((resolve, reject) =>
          this.platform.GetPlatformServer(
            { client_id: this.options.clientId, component_name: this.options.component, version: this.options.version },
            this.md(), this.deadline(Math.min(5000, Math.max(100, deadline - Date.now()))),
            (err, res) => (err ? reject(err) : resolve(res))));
        this.platformInfo = info;
        return info;
      } catch (err) {
        if (Date.now() + 200 > deadline || this.stopped) throw new Error(`GetPlatformServer failed: ${err.message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Re-opens a stream after it ended, unless stopping. */
  reopen(name, open) {
    if (this.stopped) return;
    this.counters.reconnects++;
    this.timer(() => open.call(this), RECONNECT_MS);
  }

  /** Sends an instruction carrying an id and resolves when the server acks it (any outcome). */
  expectAck(id) {
    return new Promise((resolve) => this.pendingAcks.set(id, resolve));
  }

  onAck(ack) {
    if (ack.success) this.counters.acksReceived++;
    else this.counters.nacksReceived++;
    const resolve = this.pendingAcks.get(ack.instruction_id);
    if (resolve) {
      this.pendingAcks.delete(ack.instruction_id);
      resolve(ack);
    }
  }

  // ---- platform stream ----

  openPlatform() {
    const stream = this.platform.OpenStream(this.md());
    this.streams.platform = stream;
    stream.on('data', (msg) => this.onPlatform(stream, msg));
    stream.on('error', (err) => {
      if (!this.stopped) { this.counters.streamErrors++; this.noteError('platform stream', err); }
    });
    stream.on('status', () => { if (this.streams.platform === stream) this.reopen('platform', this.openPlatform); });
    stream.write({
      register: {
        client_id: this.options.clientId,
        component_name: this.options.component,
        version: this.options.version,
        tags: {},
      },
    });
    this.sendProcessorInfo();
    return [];
  }

  platformWrite(msg) {
    const stream = this.streams.platform;
    if (stream && !this.stopped && stream.writable) stream.write(msg);
  }

  processorInfo() {
    const p = this.proc;
    // Like Axon's pooled streaming processor: a stopped processor holds no segments.
    const segments = p.running ? p.segments : [];
    return {
      processor_name: PROCESSOR,
      mode: 'Pooled Streaming',
      active_threads: segments.length,
      running: p.running,
      error: false,
      segment_status: segments.map((s) => ({
        segment_id: s.id,
        caught_up: true,
        replaying: false,
        one_part_of: s.onePartOf,
        token_position: Math.max(p.lastToken, 0),
        error_state: '',
      })),
      available_threads: 2,
      token_store_identifier: 'ts-gui',
      is_streaming_processor: true,
      load_balancing_strategy_name: '',
    };
  }

  sendProcessorInfo(instructionId = '') {
    this.platformWrite({ event_processor_info: this.processorInfo(), instruction_id: instructionId });
    this.counters.processorInfosSent++;
  }

  sendHeartbeat() {
    const id = uuid();
    this.platformWrite({ heartbeat: {}, instruction_id: id });
    this.counters.heartbeatsSent++;
  }

  onPlatform(stream, msg) {
    const kind = msg.request;
    const id = msg.instruction_id;
    if (kind === 'ack') {
      this.onAck(msg.ack);
      return;
    }
    this.counters.instructions[kind] = (this.counters.instructions[kind] || 0) + 1;
    const known = [
      'node_notification', 'request_reconnect', 'pause_event_processor', 'start_event_processor',
      'release_segment', 'request_event_processor_info', 'split_event_processor_segment',
      'merge_event_processor_segment', 'heartbeat', 'topology_change',
    ].includes(kind);
    if (id) {
      this.platformWrite({
        ack: known
          ? { instruction_id: id, success: true }
          : { instruction_id: id, success: false, error: { message: `unsupported instruction ${kind}`, error_code: 'AXONIQ-1002', location: this.options.clientId, details: [] } },
      });
      this.counters.acksSent++;
    }
    switch (kind) {
      case 'heartbeat':
        this.platformWrite({ heartbeat: {} });
        return;
      case 'request_reconnect':
        this.log('[traffic] server asked to reconnect');
        this.reconnectAll();
        return;
      case 'pause_event_processor':
      case 'start_event_processor':
      case 'request_event_processor_info':
      case 'release_segment':
      case 'split_event_processor_segment':
      case 'merge_event_processor_segment':
        this.onProcessorInstruction(kind, msg[kind], id);
        return;
      default:
    }
  }

  /** Applies a processor instruction to the simulated processor and reports the result. */
  onProcessorInstruction(kind, ref, id) {
    const p = this.proc;
    let error = null;
    if (ref.processor_name !== PROCESSOR) {
      error = `Unknown processor: ${ref.processor_name}`;
    } else if (kind === 'pause_event_processor') {
      p.running = false;
      this.closeTracking();
    } else if (kind === 'start_event_processor') {
      if (!p.running) {
        p.running = true;
        this.openTracking();
      }
    } else if (kind === 'request_event_processor_info') {
      this.sendProcessorInfo(id);
    } else {
      error = this.changeSegments(kind, ref.segment_identifier);
    }
    this.log(`[traffic] ${kind}${ref.segment_identifier !== undefined && kind.includes('segment') ? ` ${ref.segment_identifier}` : ''}: ${error || 'done'}`);
    if (id) {
      this.platformWrite({
        result: error
          ? { instruction_id: id, success: false, error: { message: error, error_code: 'AXONIQ-1004', location: this.options.clientId, details: [] } }
          : { instruction_id: id, success: true },
      });
      this.counters.instructionResults++;
    }
    if (kind !== 'request_event_processor_info') this.sendProcessorInfo();
  }

  /** split, merge or release of a segment; returns an error text or null. */
  changeSegments(kind, segmentId) {
    const p = this.proc;
    const index = p.segments.findIndex((s) => s.id === segmentId);
    if (index < 0) return `segment ${segmentId} is not claimed by ${this.options.clientId}`;
    const segment = p.segments[index];
    if (kind === 'release_segment') {
      p.segments.splice(index, 1);
      // Claimed again a little later when nobody else took it (this app is alone, so always).
      this.timer(() => {
        if (!p.segments.some((s) => s.id === segment.id || overlaps(s, segment))) {
          p.segments.push(segment);
          sortSegments(p.segments);
          this.sendProcessorInfo();
        }
      }, RECLAIM_AFTER_MS);
      return null;
    }
    if (kind === 'split_event_processor_segment') {
      const n = segment.onePartOf;
      p.segments.splice(index, 1, { id: segment.id, onePartOf: 2 * n }, { id: segment.id + n, onePartOf: 2 * n });
      sortSegments(p.segments);
      return null;
    }
    // merge: segment s of n with its sibling s xor n/2 into (s mod n/2) of n/2
    const n = segment.onePartOf;
    if (n <= 1) return `segment ${segmentId} cannot be merged (it is the whole stream)`;
    const half = n / 2;
    const siblingId = segment.id < half ? segment.id + half : segment.id - half;
    p.segments = p.segments.filter((s) => s.id !== segment.id && !(s.id === siblingId && s.onePartOf === n));
    p.segments.push({ id: Math.min(segment.id, siblingId), onePartOf: half });
    sortSegments(p.segments);
    return null;
  }

  // ---- tracking stream of the processor ----

  openTracking() {
    if (this.stopped || !this.proc.running || this.streams.tracking) return;
    const stream = this.events.ListEvents(this.md());
    this.streams.tracking = stream;
    let consumed = 0;
    stream.on('data', (e) => {
      this.proc.lastToken = Math.max(this.proc.lastToken, e.token);
      this.counters.eventsTracked++;
      if (++consumed >= TRACKING_PERMITS / 2) {
        consumed = 0;
        if (stream.writable) stream.write({ number_of_permits: TRACKING_PERMITS / 2 });
      }
    });
    stream.on('error', (err) => {
      if (this.streams.tracking === stream && !this.stopped) {
        this.counters.streamErrors++;
        this.noteError('tracking stream', err);
      }
    });
    stream.on('status', () => {
      if (this.streams.tracking !== stream) return; // cancelled by us (pause, stop)
      this.streams.tracking = null;
      if (!this.stopped && this.proc.running) this.reopen('tracking', this.openTracking);
    });
    stream.write({
      tracking_token: this.proc.lastToken + 1,
      number_of_permits: TRACKING_PERMITS,
      client_id: this.options.clientId,
      component_name: this.options.component,
      processor: PROCESSOR,
    });
  }

  closeTracking() {
    const stream = this.streams.tracking;
    this.streams.tracking = null;
    if (stream) stream.cancel();
  }

  // ---- command handler stream ----

  openCommandStream() {
    const o = this.options;
    const stream = this.commands.OpenStream(this.md());
    this.streams.commands = stream;
    let received = 0;
    stream.on('data', (msg) => {
      if (msg.request === 'ack') return this.onAck(msg.ack);
      if (msg.instruction_id) {
        stream.write({ ack: { instruction_id: msg.instruction_id, success: true } });
        this.counters.acksSent++;
      }
      if (msg.request === 'command') {
        const command = msg.command;
        this.counters.commandsHandled++;
        const payload = parse(command.payload && command.payload.data);
        stream.write({
          command_response: {
            message_identifier: uuid(),
            request_identifier: command.message_identifier,
            payload: { type: 'java.lang.String', revision: '', data: json({ handledBy: o.clientId, command: command.name, cardId: payload.cardId }) },
            meta_data: {},
          },
        });
        if (++received >= COMMAND_PERMITS / 4) {
          received = 0;
          stream.write({ flow_control: { client_id: o.clientId, permits: COMMAND_PERMITS / 4 } });
        }
      }
    });
    stream.on('error', (err) => { if (!this.stopped) { this.counters.streamErrors++; this.noteError('command stream', err); } });
    stream.on('status', () => { if (this.streams.commands === stream) this.reopen('commands', this.openCommandStream); });
    stream.write({ flow_control: { client_id: o.clientId, permits: COMMAND_PERMITS } });
    return ['IssueCard', 'RedeemCard'].map((command) => {
      const id = uuid();
      const acked = this.expectAck(id);
      stream.write({
        subscribe: { message_id: id, command, component_name: o.component, client_id: o.clientId, load_factor: 100 },
        instruction_id: id,
      });
      return acked.then((ack) => {
        if (!ack.success) throw new Error(`subscription to ${command} refused: ${JSON.stringify(ack.error)}`);
      });
    });
  }

  // ---- query handler stream ----

  openQueryStream() {
    const o = this.options;
    const stream = this.queries.OpenStream(this.md());
    this.streams.queries = stream;
    let received = 0;
    stream.on('data', (msg) => {
      if (msg.request === 'ack') return this.onAck(msg.ack);
      if (msg.instruction_id) {
        stream.write({ ack: { instruction_id: msg.instruction_id, success: true } });
        this.counters.acksSent++;
      }
      if (msg.request === 'query') {
        const query = msg.query;
        this.counters.queriesHandled++;
        const { cardId } = parse(query.payload && query.payload.data);
        const seq = this.cardSeq.get(cardId);
        stream.write({
          query_response: {
            message_identifier: uuid(),
            request_identifier: query.message_identifier,
            payload: { type: 'CardSummary', revision: '', data: json({ cardId, known: seq !== undefined, events: seq || 0, handledBy: o.clientId }) },
            meta_data: {},
          },
        });
        stream.write({ query_complete: { message_id: uuid(), request_id: query.message_identifier } });
      }
      if (++received >= QUERY_PERMITS / 4) {
        received = 0;
        stream.write({ flow_control: { client_id: o.clientId, permits: QUERY_PERMITS / 4 } });
      }
    });
    stream.on('error', (err) => { if (!this.stopped) { this.counters.streamErrors++; this.noteError('query stream', err); } });
    stream.on('status', () => { if (this.streams.queries === stream) this.reopen('queries', this.openQueryStream); });
    stream.write({ flow_control: { client_id: o.clientId, permits: QUERY_PERMITS } });
    const id = uuid();
    const acked = this.expectAck(id);
    stream.write({
      subscribe: { message_id: id, query: 'FindCard', result_name: 'CardSummary', component_name: o.component, client_id: o.clientId },
      instruction_id: id,
    });
    return [acked.then((ack) => {
      if (!ack.success) throw new Error(`subscription to FindCard refused: ${JSON.stringify(ack.error)}`);
    })];
  }

  /** On request_reconnect: drop the handler and platform streams and open them again. */
  reconnectAll() {
    const { platform, commands, queries } = this.streams;
    this.streams.platform = this.streams.commands = this.streams.queries = null;
    for (const s of [platform, commands, queries]) if (s) { try { s.end(); } catch { /* closed */ } }
    this.counters.reconnects++;
    this.timer(() => {
      this.openPlatform();
      this.openCommandStream();
      this.openQueryStream();
    }, 100);
  }

  // ---- load ----

  scheduleTick() {
    const [lo, hi] = this.options.intervalMs;
    this.timer(() => {
      this.tick();
      this.scheduleTick();
    }, lo + Math.floor(Math.random() * (hi - lo + 1)));
  }

  tick() {
    this.ticks++;
    const known = [...this.cardSeq.keys()];
    const pick = () => known[Math.floor(Math.random() * known.length)];
    // An event of a new card (40 %, and always for the first), else a redemption on a known one;
    // one append at a time, so an aggregate's sequence numbers never race.
    const issue = known.length === 0 || Math.random() < 0.4;
    // card-1 gets every 4th event at least, so it soon has a snapshot to look at
    const cardId = issue ? `card-${this.cardCount + 1}` : this.ticks % 4 === 0 && this.cardSeq.has('card-1') ? 'card-1' : pick();
    if (!this.appending) {
      if (issue) this.cardCount++;
      this.appendEvent(cardId, issue ? 'GiftCardIssued' : 'GiftCardRedeemed');
    }
    this.dispatchCommand(issue ? 'IssueCard' : 'RedeemCard', cardId);
    if (this.ticks % 3 === 0 && known.length) this.dispatchQuery(pick());
  }

  appendEvent(cardId, type) {
    const seq = this.cardSeq.get(cardId) ?? 0;
    const payload = type === 'GiftCardIssued'
      ? { cardId, amount: 100 + (this.cardCount % 5) * 50 }
      : { cardId, amount: 1 + Math.floor(Math.random() * 20) };
    const event = {
      message_identifier: uuid(),
      aggregate_identifier: cardId,
      aggregate_sequence_number: seq,
      aggregate_type: 'GiftCard',
      timestamp: Date.now(),
      payload: { type, revision: '', data: json(payload) },
      meta_data: { tenant: text('gui'), correlationId: text(uuid()), traceId: text(uuid()) },
      snapshot: false,
    };
    this.appending = true;
    const call = this.events.AppendEvent(this.md(), this.deadline(), (err, res) => {
      this.appending = false;
      if (err && err.code === grpc.status.OUT_OF_RANGE) {
        // sequence conflict (AXONIQ-2000): the card exists already, e.g. from an earlier run
        // against the same data; continue after its highest stored sequence number
        this.counters.appendConflicts++;
        this.catchUpSequence(cardId);
        return;
      }
      if (err || !res.success) {
        this.counters.appendErrors++;
        this.noteError(`append ${cardId}#${seq}`, err || 'success=false');
        return;
      }
      this.counters.eventsAppended++;
      this.cardSeq.set(cardId, seq + 1);
      // a snapshot after every 5th event of a card, as a snapshot trigger would
      if ((seq + 1) % 5 === 0) this.appendSnapshot(cardId, seq);
    });
    call.write(event);
    call.end();
  }

  catchUpSequence(cardId) {
    this.appending = true;
    this.events.ReadHighestSequenceNr({ aggregate_id: cardId, from_sequence_nr: 0 }, this.md(), this.deadline(), (err, res) => {
      this.appending = false;
      if (err) return this.noteError(`ReadHighestSequenceNr ${cardId}`, err);
      this.cardSeq.set(cardId, res.to_sequence_nr + 1);
    });
  }

  appendSnapshot(cardId, seq) {
    const snapshot = {
      message_identifier: uuid(),
      aggregate_identifier: cardId,
      aggregate_sequence_number: seq,
      aggregate_type: 'GiftCard',
      timestamp: Date.now(),
      payload: { type: 'GiftCard', revision: '', data: json({ cardId, events: seq + 1 }) },
      meta_data: {},
      snapshot: true,
    };
    this.events.AppendSnapshot(snapshot, this.md(), this.deadline(), (err, res) => {
      if (err || !res.success) {
        this.counters.snapshotErrors++;
        this.noteError(`snapshot ${cardId}#${seq}`, err || 'success=false');
      } else {
        this.counters.snapshotsAppended++;
      }
    });
  }

  dispatchCommand(name, cardId) {
    const o = this.options;
    this.counters.commandsDispatched++;
    this.commands.Dispatch({
      message_identifier: uuid(),
      name,
      timestamp: Date.now(),
      payload: { type: name, revision: '', data: json({ cardId }) },
      meta_data: { tenant: text('gui') },
      processing_instructions: [
        { key: 'ROUTING_KEY', value: text(cardId) },
        { key: 'PRIORITY', value: { number_value: 0 } },
      ],
      client_id: o.clientId,
      component_name: o.component,
    }, this.md(), this.deadline(), (err, res) => {
      if (err || res.error_code) {
        this.counters.commandErrors++;
        this.noteError(`dispatch ${name}`, err || `${res.error_code} ${res.error_message && res.error_message.message}`);
      } else {
        this.counters.commandsAnswered++;
      }
    });
  }

  dispatchQuery(cardId) {
    const o = this.options;
    this.counters.queriesDispatched++;
    const call = this.queries.Query({
      message_identifier: uuid(),
      query: 'FindCard',
      timestamp: Date.now(),
      payload: { type: 'FindCard', revision: '', data: json({ cardId }) },
      meta_data: {},
      response_type: { type: 'CardSummary', revision: '', data: Buffer.alloc(0) },
      processing_instructions: [
        { key: 'NR_OF_RESULTS', value: { number_value: 1 } },
        { key: 'TIMEOUT', value: { number_value: CALL_DEADLINE_MS } },
        { key: 'PRIORITY', value: { number_value: 0 } },
      ],
      client_id: o.clientId,
      component_name: o.component,
    }, this.md(), this.deadline());
    let ok = false;
    let failure = null;
    call.on('data', (res) => {
      if (res.error_code) failure = `${res.error_code} ${res.error_message && res.error_message.message}`;
      else ok = true;
    });
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      if (ok) this.counters.queriesAnswered++;
      else {
        this.counters.queryErrors++;
        this.noteError('query FindCard', failure || err || 'no response');
      }
    };
    call.on('error', finish);
    call.on('end', () => finish(null));
  }

  // ---- views ----

  /** The simulated processor's state, as it reports it. */
  processor() {
    return {
      running: this.proc.running,
      segments: this.proc.segments.map((s) => ({ ...s })),
      lastToken: this.proc.lastToken,
    };
  }

  /** Known cards and how many events each has: [{cardId, events}]. */
  cards() {
    return [...this.cardSeq.entries()].map(([cardId, events]) => ({ cardId, events }));
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers.clear();
    const o = this.options;
    const { commands, queries, platform, tracking } = this.streams;
    try {
      if (commands) {
        for (const command of ['IssueCard', 'RedeemCard']) {
          commands.write({ unsubscribe: { message_id: uuid(), command, component_name: o.component, client_id: o.clientId } });
        }
        commands.end();
      }
      if (queries) {
        queries.write({ unsubscribe: { message_id: uuid(), query: 'FindCard', result_name: 'CardSummary', component_name: o.component, client_id: o.clientId } });
        queries.end();
      }
      if (tracking) tracking.cancel();
      if (platform) platform.end();
    } catch { /* streams already gone */ }
    // let the half-closes reach the server (each stream ends with a status), at most 2 s, then
    // close the channels
    const ended = [commands, queries, platform].filter(Boolean).map((stream) => new Promise((resolve) => {
      stream.on('status', resolve);
      stream.on('error', resolve);
      stream.resume(); // read what is still coming so the call can finish
    }));
    await withDeadline(Promise.all(ended), 2000, 'streams closed').catch(() => {});
    for (const c of [this.platform, this.commands, this.queries, this.events]) if (c) c.close();
  }
}

function overlaps(a, b) {
  // two segments overlap when one's id, masked to the coarser level, equals the other's
  const coarse = Math.min(a.onePartOf, b.onePartOf);
  return a.id % coarse === b.id % coarse;
}

function sortSegments(segments) {
  segments.sort((a, b) => a.id - b.id);
}

function parse(data) {
  try {
    return JSON.parse(Buffer.from(data || '').toString('utf8'));
  } catch {
    return {};
  }
}

function withDeadline(promise, ms, what) {
  let handle;
  const timeout = new Promise((_, reject) => {
    handle = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(handle));
}

/**
 * Starts the application against `host:grpcPort` and resolves once its command and query
 * subscriptions are acknowledged (rejects after `readyTimeoutMs`, default 15 s).
 * Options: grpcPort (required), host ('127.0.0.1'), token, context ('default'), clientId
 * ('gui-traffic-1'), component ('gift-card-service'), intervalMs ([100, 200]), durationMs, log.
 */
async function start(options) {
  const traffic = new Traffic(options);
  try {
    return await traffic.startAll(options.readyTimeoutMs);
  } catch (err) {
    await traffic.stop();
    throw err;
  }
}

module.exports = { start, client, axonMetadata, loadProtos, PROCESSOR };

// ---- standalone ----

function parseArgs(argv) {
  const args = { port: 8124, host: '127.0.0.1', context: 'default', duration: 600 };
  for (let i = 0; i < argv.length; i++) {
    const [key, inline] = argv[i].replace(/^--/, '').split('=', 2);
    const value = inline !== undefined ? inline : argv[++i];
    if (!['port', 'host', 'token', 'context', 'duration', 'client-id'].includes(key) || value === undefined) {
      console.error('usage: node traffic.js [--port 8124] [--host 127.0.0.1] [--token T] [--context default] [--duration 600] [--client-id gui-traffic-1]');
      process.exit(2);
    }
    args[key] = value;
  }
  return args;
}

if (require.main === module) {
  const args = parseArgs(process.argv.slice(2));
  const duration = Number(args.duration);
  if (!(duration > 0)) {
    console.error('--duration must be a positive number of seconds');
    process.exit(2);
  }
  (async () => {
    const traffic = await start({
      grpcPort: Number(args.port),
      host: args.host,
      token: args.token || process.env.AXONIQ_TOKEN,
      context: args.context,
      clientId: args['client-id'] || 'gui-traffic-1',
      log: (line) => console.error(line),
    });
    console.log(`traffic to ${args.host}:${args.port} (context ${args.context}) for ${duration} s; Ctrl-C stops`);
    const show = () => {
      const c = traffic.counters;
      console.log(`events ${c.eventsAppended} (+${c.snapshotsAppended} snapshots, ${c.appendErrors} errors), ` +
        `tracked ${c.eventsTracked}, commands ${c.commandsAnswered}/${c.commandsDispatched} (handled ${c.commandsHandled}), ` +
        `queries ${c.queriesAnswered}/${c.queriesDispatched} (handled ${c.queriesHandled}), ` +
        `processor ${traffic.proc.running ? 'running' : 'paused'} [${traffic.proc.segments.map((s) => `${s.id}/${s.onePartOf}`).join(' ')}] at ${traffic.proc.lastToken}`);
    };
    const every = setInterval(show, 5000);
    let stopping = false;
    const finish = async (code) => {
      if (stopping) return;
      stopping = true;
      clearInterval(every);
      clearTimeout(limit);
      show();
      await traffic.stop();
      process.exit(code);
    };
    const limit = setTimeout(() => finish(0), duration * 1000);
    process.on('SIGINT', () => finish(0));
    process.on('SIGTERM', () => finish(0));
  })().catch((err) => {
    console.error(`traffic: ${err.message}`);
    process.exit(1);
  });
}
