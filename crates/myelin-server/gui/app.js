/* Myelin GUI logic: API client (sign-in with a user's password or an access token, the CSRF
   header, errors as toasts, SSE over fetch), the hash router
   with per-page scopes (polling, aborts), the top bar, a reusable SVG line chart, the topology
   diagram and the pages: overview, search, commands, queries, processors, cluster. */
'use strict';
(() => {
  const REFRESH_MS = 1500;
  const TOKEN_KEY = 'myelin.accessToken';
  const CONTEXT_KEY = 'myelin.context';
  const THEME_KEY = 'myelin.theme';
  const CSRF_COOKIE = 'XSRF-TOKEN';
  const SAFE_METHODS = ['GET', 'HEAD', 'OPTIONS'];
  const PAGES = ['overview', 'search', 'commands', 'queries', 'processors', 'cluster'];
  const TITLES = { overview: 'Overview', search: 'Search', commands: 'Commands', queries: 'Queries', processors: 'Event processors', cluster: 'Cluster' };
  const PALETTE = ['#2f6fde', '#e8743b', '#19a979', '#945ecf', '#e0457b', '#13a4b4', '#c99a16', '#6c8893', '#a6561d', '#5e7d2a', '#8b8b8b'];
  const WINDOW_MS = 300000;

  // ---------------------------------------------------------------- small helpers
  const storage = (kind) => ({
    get(k) { try { return window[kind].getItem(k); } catch (e) { return null; } },
    set(k, v) { try { window[kind].setItem(k, v); } catch (e) { /* private mode */ } },
    remove(k) { try { window[kind].removeItem(k); } catch (e) { /* private mode */ } },
  });
  const local = storage('localStorage');
  const session = storage('sessionStorage');
  const theme = local.get(THEME_KEY);
  if (theme) document.documentElement.dataset.theme = theme;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ESC[c]);
  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : null);
  const int = (v) => (num(v) == null ? '–' : String(Math.round(v)));
  const fmtInt = (v) => (num(v) == null ? '–' : Math.round(v).toLocaleString('en-US'));
  const fmtRate = (v) => (num(v) == null ? '–' : v >= 100 ? fmtInt(v) : v.toFixed(1));
  const fmtMs = (v) => (num(v) == null ? '–' : v < 1 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : fmtInt(v));
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const sum = (a) => (a || []).reduce((s, v) => s + (num(v) || 0), 0);
  const enc = encodeURIComponent;
  function fmtClock(ms, secs = true) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}${secs ? ':' + pad(d.getSeconds()) : ''}`;
  }
  function fmtStamp(ms) {
    if (num(ms) == null) return '–';
    const d = new Date(ms);
    const time = `${fmtClock(ms)}.${pad(d.getMilliseconds(), 3)}`;
    return d.toDateString() === new Date().toDateString() ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }
  function recentAvg(values, n = 5) {
    const a = (values || []).slice(-n);
    return a.length ? sum(a) / a.length : 0;
  }
  function h(html) {
    const t = document.createElement('template');
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  function abortError() {
    return new DOMException('Aborted', 'AbortError');
  }
  function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) return reject(abortError());
      const id = setTimeout(resolve, ms);
      if (signal) signal.addEventListener('abort', () => { clearTimeout(id); reject(abortError()); }, { once: true });
    });
  }
  function url(path, params = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
    const s = q.toString();
    return s ? `${path}?${s}` : path;
  }
  function cookie(name) {
    const pair = document.cookie.split(/;\s*/).find((c) => c.startsWith(`${name}=`));
    return pair ? pair.slice(name.length + 1) : '';
  }
  // user: who is signed in (shown in the top bar), null when access control is off or nobody is
  const state = { context: local.get(CONTEXT_KEY) || 'default', user: null };
  const ctxUrl = (path, params = {}) => url(path, { context: state.context, ...params });

  // ---------------------------------------------------------------- toasts
  const toastBox = $('#toasts');
  const toasts = new Map();
  function dropToast(key) {
    const t = toasts.get(key);
    if (!t) return;
    clearTimeout(t.timer);
    t.el.remove();
    toasts.delete(key);
  }
  function toast(message, code, kind = 'error') {
    const key = `${kind}|${code}|${message}`;
    let t = toasts.get(key);
    if (t) {
      t.count += 1;
      t.el.querySelector('.count').textContent = `×${t.count}`;
      clearTimeout(t.timer);
    } else {
      const el = h(`<div class="toast ${kind}" role="alert"><span class="code">${esc(code || '')}</span><span class="msg">${esc(message)}</span><span class="count"></span><button class="x" type="button" aria-label="Dismiss">×</button></div>`);
      el.querySelector('.x').addEventListener('click', () => dropToast(key));
      toastBox.appendChild(el);
      t = { el, count: 1 };
      toasts.set(key, t);
      while (toasts.size > 4) dropToast(toasts.keys().next().value);
    }
    t.timer = setTimeout(() => dropToast(key), kind === 'error' ? 10000 : 4000);
  }
  function report(err) {
    if (!err || err.name === 'AbortError') return;
    if (err instanceof ApiError) toast(err.message, err.code);
    else toast(String(err.message || err), 'GUI');
  }

  // ---------------------------------------------------------------- signing in
  // With access control on, calls carry an access token (kept in sessionStorage, sent as
  // AxonIQ-Access-Token) or the session cookie that POST /login sets; request() then echoes the
  // XSRF-TOKEN cookie in X-XSRF-TOKEN on every state-changing call.
  const loginForm = $('#login');
  const loginBackdrop = $('#login-backdrop');
  const loginError = $('#login-error');
  let loginWait = null;
  /** Shows the sign-in form; resolves once signed in (rejects with `err` on cancel). */
  function askForLogin(message, err) {
    if (!loginWait) {
      // the first reason stays: calls refused after it only repeat it
      $('#login-message').textContent = message;
      $('#login-cancel').hidden = !session.get(TOKEN_KEY);
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      promise.catch(() => { /* handled by each waiter */ });
      loginWait = { promise, resolve, reject };
      loginForm.reset();
      loginError.hidden = true;
      loginBackdrop.hidden = false;
      loginForm.hidden = false;
      setTimeout(() => $('#login-user').focus(), 0);
    }
    loginWait.err = err;
    return loginWait.promise;
  }
  function closeLogin(ok) {
    loginForm.hidden = true;
    loginBackdrop.hidden = true;
    const w = loginWait;
    loginWait = null;
    if (w && ok) w.resolve();
    else if (w) w.reject(w.err || new ApiError(401, 'AXONIQ-1000', 'No access token given'));
  }
  function loginReason(err) {
    if (session.get(TOKEN_KEY)) return `The access token was refused (${err.code}). Sign in again.`;
    if (state.user) return `Your session has ended (${err.code}). Sign in again.`;
    return 'This Myelin node has access control enabled. Sign in with your user name and password, or an access token.';
  }
  let whoCheck = null;
  /** GET /v1/public/user: the caller the current credentials identify (one call at a time). */
  function whoAmI() {
    if (!whoCheck) whoCheck = request('/v1/public/user', { open: true, prompt: false }).finally(() => { whoCheck = null; });
    return whoCheck;
  }
  function showUser(who) {
    state.user = who ? who.user || 'access token' : null;
    $('#user-name').textContent = state.user || '';
    $('#user-name').hidden = !state.user;
    $('#logout').hidden = !state.user;
  }
  loginForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const user = $('#login-user').value.trim();
    const token = $('#token').value.trim();
    const fail = (text) => { loginError.textContent = text; loginError.hidden = false; };
    if (!user && !token) return fail('Enter a user name and password, or an access token.');
    const submit = $('#login-submit');
    submit.disabled = true;
    loginError.hidden = true;
    try {
      if (user) {
        session.remove(TOKEN_KEY);
        showUser(await request('/login', { method: 'POST', body: { userName: user, password: $('#login-password').value }, open: true, prompt: false }));
      } else {
        session.set(TOKEN_KEY, token);
        showUser(await whoAmI());
      }
      closeLogin(true);
    } catch (err) {
      if (!user) session.remove(TOKEN_KEY);
      if (err.status === 429) fail(`Too many failed logins, try again in ${err.retryAfter || 'a few'} s`);
      else if (err.status === 401 || err.status === 403) fail(`${user ? 'Wrong user name or password' : 'The access token was refused'} (${err.code})`);
      else fail(`${err.code} ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });
  $('#login-cancel').addEventListener('click', () => closeLogin(false));
  $('#logout').addEventListener('click', async () => {
    const hadSession = !!cookie(CSRF_COOKIE);
    session.remove(TOKEN_KEY);
    if (hadSession) {
      // a session that already ended answers 403; the cookies are then stale anyway
      try { await request('/logout', { method: 'POST', open: true, prompt: false }); } catch (e) { if (e.status !== 403) report(e); }
    }
    showUser(null);
    if (current) current.dispose();
    current = null;
    pageEl.textContent = '';
    delete pageEl.dataset.loaded;
    askForLogin('You are signed out.').then(route, () => {});
  });

  // ---------------------------------------------------------------- API client
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.code = code;
    }
  }
  async function errorOf(res) {
    let code = res.headers.get('AxonIQ-ErrorCode') || '';
    let message = '';
    try {
      const text = await res.text();
      try {
        const j = JSON.parse(text);
        code = j.code || code;
        message = j.message || j.error || '';
      } catch (e) {
        message = text.slice(0, 300);
      }
    } catch (e) { /* body unreadable */ }
    const err = new ApiError(res.status, code || `HTTP ${res.status}`, message || res.statusText || 'Request failed');
    err.retryAfter = res.headers.get('Retry-After');
    return err;
  }
  async function request(path, opts = {}) {
    // open: do not wait while the sign-in form is up; prompt: false answers 401/403 as errors
    const { method = 'GET', body, signal, stream = false, allow = [], open = false, prompt = true } = opts;
    for (let attempt = 0; ; attempt++) {
      // While the sign-in form is up, calls wait for it instead of collecting more 401s.
      if (loginWait && !open) {
        await loginWait.promise;
        if (signal && signal.aborted) throw abortError();
      }
      const headers = { Accept: stream ? 'text/event-stream' : 'application/json' };
      const token = session.get(TOKEN_KEY);
      if (token) headers['AxonIQ-Access-Token'] = token;
      const csrf = SAFE_METHODS.includes(method) ? '' : cookie(CSRF_COOKIE);
      if (csrf) headers['X-XSRF-TOKEN'] = csrf;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      let res;
      try {
        res = await fetch(path, { method, signal, cache: 'no-store', headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (e) {
        if (e.name === 'AbortError' || (signal && signal.aborted)) throw abortError();
        throw new ApiError(0, 'OFFLINE', `Cannot reach Myelin (${method} ${path.split('?')[0]})`);
      }
      if ((res.status === 401 || res.status === 403) && prompt && attempt < 6) {
        const err = await errorOf(res);
        // still signed in: the caller lacks a role for this call, which is reported where it was made
        const who = await whoAmI().catch(() => null);
        if (who) throw new ApiError(res.status, err.code, `Forbidden: ${who.user || 'this token'} has no role that allows ${method} ${path.split('?')[0]}`);
        const reason = loginReason(err);
        showUser(null);
        await askForLogin(reason, err);
        if (signal && signal.aborted) throw abortError();
        continue;
      }
      if (!res.ok && !allow.includes(res.status)) throw await errorOf(res);
      if (stream) return res;
      const text = await res.text();
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new ApiError(res.status, 'GUI', `Unexpected answer from ${path.split('?')[0]}`);
      }
    }
  }
  /** Reads a server-sent-events body; calls onMessage({data, id, event}) per message. */
  async function readSse(res, onMessage) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let data = [];
    let id = null;
    let event = '';
    const line = (l) => {
      if (l === '') {
        if (data.length) onMessage({ data: data.join('\n'), id, event });
        data = [];
        event = '';
        return;
      }
      if (l[0] === ':') return;
      const c = l.indexOf(':');
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? '' : l.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      else if (field === 'event') event = value;
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          let l = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (l.endsWith('\r')) l = l.slice(0, -1);
          line(l);
        }
      }
      if (buf) line(buf);
      line('');
    } finally {
      try { reader.releaseLock(); } catch (e) { /* already released */ }
    }
  }
  /**
   * An event or snapshot as the GUI shows it. The wire form is Axon's JsonEvent plus `token`, with
   * `payload: {type, revision, data, encoding?}`; a flat `payloadType` / string `payload` is read too.
   */
  function normEvent(v) {
    const p = v.payload;
    if (p && typeof p === 'object') {
      return { ...v, payloadType: p.type != null ? p.type : v.payloadType || '', payloadRevision: p.revision != null ? p.revision : v.payloadRevision || '',
        payloadData: p.data == null ? '' : typeof p.data === 'string' ? p.data : JSON.stringify(p.data), payloadEncoding: p.encoding || '' };
    }
    return { ...v, payloadType: v.payloadType || '', payloadRevision: v.payloadRevision || '', payloadData: p == null ? '' : String(p), payloadEncoding: '' };
  }
  /** Streams event (or snapshot) objects from an SSE endpoint; an in-band error becomes a toast. */
  async function streamEvents(path, signal, onEvent) {
    const res = await request(path, { stream: true, signal });
    await readSse(res, (msg) => {
      let v;
      try { v = JSON.parse(msg.data); } catch (e) { return; }
      if (!v || typeof v !== 'object') return;
      if (v.payload === undefined && v.messageIdentifier === undefined && (v.error || v.message)) {
        toast(v.message || v.error, v.code || 'STREAM');
        return;
      }
      onEvent(normEvent(v), msg.id);
    });
  }

  // ---------------------------------------------------------------- page scopes and router
  const pageEl = $('#page');
  /** Everything a mounted page owns: timers and in-flight requests, all ended on dispose. */
  class Scope {
    constructor(name) {
      this.name = name;
      this.alive = true;
      this.timers = new Set();
      this.ctrls = new Set();
      this.ticks = [];
      this.cleanups = [];
    }
    controller() {
      const c = new AbortController();
      if (this.alive) this.ctrls.add(c);
      else c.abort();
      return c;
    }
    release(c) { this.ctrls.delete(c); }
    async req(path, opts = {}) {
      const c = this.controller();
      const outer = opts.signal;
      if (outer) {
        if (outer.aborted) c.abort();
        else outer.addEventListener('abort', () => c.abort(), { once: true });
      }
      try {
        return await request(path, { ...opts, signal: c.signal });
      } finally {
        this.release(c);
      }
    }
    poll(fn, ms = REFRESH_MS) {
      let busy = false;
      const tick = async () => {
        if (!this.alive || busy || document.hidden) return;
        busy = true;
        try {
          await fn();
        } catch (e) {
          if (this.alive) report(e);
        } finally {
          busy = false;
        }
      };
      this.ticks.push(tick);
      this.timers.add(setInterval(tick, ms));
      tick();
      return tick;
    }
    later(fn, ms) {
      const id = setTimeout(() => { this.timers.delete(id); if (this.alive) fn(); }, ms);
      this.timers.add(id);
    }
    kick() { this.ticks.forEach((t) => t()); }
    loaded() { if (this.alive) pageEl.dataset.loaded = '1'; }
    onDispose(fn) { this.cleanups.push(fn); }
    dispose() {
      this.alive = false;
      this.timers.forEach((id) => { clearInterval(id); clearTimeout(id); });
      this.timers.clear();
      this.ctrls.forEach((c) => c.abort());
      this.ctrls.clear();
      this.cleanups.forEach((f) => { try { f(); } catch (e) { /* ignore */ } });
    }
  }

  let current = null;
  function route() {
    let name = (location.hash.match(/^#\/([\w-]+)/) || [])[1];
    if (!PAGES.includes(name)) {
      name = 'overview';
      if (location.hash !== '#/overview') history.replaceState(null, '', '#/overview');
    }
    if (current) current.dispose();
    pageEl.dataset.page = name;
    delete pageEl.dataset.loaded;
    pageEl.textContent = '';
    $$('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === name));
    document.title = `${TITLES[name]} · Myelin`;
    current = new Scope(name);
    try {
      RENDER[name](pageEl, current);
    } catch (e) {
      report(e);
    }
  }
  function setContext(name) {
    if (!name || name === state.context) return;
    state.context = name;
    local.set(CONTEXT_KEY, name);
    ctxSelect.value = name;
    route();
  }

  // ---------------------------------------------------------------- top bar
  const ctxSelect = $('#context-select');
  const healthBadge = $('#health-badge');
  let overviewAt = 0;
  let knownContexts = '';
  ctxSelect.value = state.context;
  ctxSelect.addEventListener('change', () => setContext(ctxSelect.value));
  function applyOverview(ov) {
    overviewAt = Date.now();
    if (!ov) return;
    if (ov.node) $('#node-name').textContent = ov.node;
    const names = (ov.contexts || []).map((c) => c.name).filter(Boolean);
    const key = names.join('\n');
    if (key && key !== knownContexts) {
      knownContexts = key;
      const opts = names.includes(state.context) ? names : [state.context, ...names];
      ctxSelect.innerHTML = opts.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('');
      ctxSelect.value = state.context;
    }
  }
  function applyHealth(hl) {
    const status = (hl && hl.status) || 'UNKNOWN';
    healthBadge.textContent = status;
    healthBadge.className = `health ${status === 'UP' ? 'up' : status === 'DOWN' ? 'down' : 'unknown'}`;
    const comps = (hl && hl.components) || {};
    const lines = Object.entries(comps).map(([k, v]) => `${k}: ${(v && v.status) || '?'}`);
    const raft = comps.raft && comps.raft.details;
    if (raft) lines.push(`role ${raft.role}, leader ${raft.leader || '–'}, term ${raft.term}`);
    healthBadge.title = `/actuator/health\n${lines.join('\n')}`;
  }
  async function fetchHealth(signal) {
    return request('/actuator/health', { allow: [503], signal, open: true });
  }
  async function topbarTick() {
    if (document.hidden) return;
    try {
      applyHealth(await fetchHealth());
    } catch (e) {
      healthBadge.textContent = 'OFFLINE';
      healthBadge.className = 'health down';
      report(e);
    }
    if (Date.now() - overviewAt > 2500) {
      try {
        applyOverview(await request(ctxUrl('/v1/myelin/overview')));
      } catch (e) {
        if (e.code === 'AXONIQ-1302' && state.context !== 'default') setContext('default');
        else report(e);
      }
    }
  }
  $('#theme-toggle').addEventListener('click', () => {
    const root = document.documentElement;
    const dark = root.dataset.theme !== 'dark';
    root.dataset.theme = dark ? 'dark' : 'light';
    local.set(THEME_KEY, root.dataset.theme);
    if (current) current.kick();
  });

  // ---------------------------------------------------------------- SVG line chart
  function niceTicks(max, integer) {
    if (!(max > 0)) max = 1;
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    let step = (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
    if (integer) step = Math.max(1, Math.ceil(step));
    const top = Math.ceil(max / step - 1e-9) * step;
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(+v.toFixed(6));
    return { ticks, top };
  }
  function fmtTick(v) {
    if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (v >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
    return Number.isInteger(v) ? String(v) : String(+v.toFixed(2));
  }
  /** Points of a per-second timeline array: [timeMs, value] oldest first. */
  function timelinePoints(values, tl) {
    const n = (values || []).length;
    const step = (tl && tl.intervalMs) || 1000;
    const end = (tl && tl.endMs) || Date.now();
    return (values || []).map((v, i) => [end - (n - 1 - i) * step, num(v) || 0]);
  }
  /**
   * Draws a line chart into `host` (a .chart-host element): an <svg class="chart"> with axes,
   * gridlines, one path per series and a hover tooltip; the legend goes into `opts.legend`.
   * opts: series [{name, color, points: [[t, v], …]}], x0/x1 (time domain, ms), height, unit,
   * integer (whole-number ticks), empty (text when there is nothing to show), fmt (value format).
   */
  function lineChart(host, opts) {
    const series = (opts.series || []).filter((s) => s && s.points);
    const W = Math.max(260, Math.round((host.clientWidth || 600) - 16));
    const H = opts.height || 170;
    const m = { l: 40, r: 12, t: 10, b: 22 };
    const x1 = opts.x1 || Date.now();
    const x0 = opts.x0 || x1 - WINDOW_MS;
    let max = 0;
    for (const s of series) for (const p of s.points) if (p[1] > max) max = p[1];
    const empty = !series.length || !(max > 0);
    const { ticks, top } = niceTicks(max, opts.integer);
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const X = (t) => m.l + ((t - x0) / (x1 - x0 || 1)) * pw;
    const Y = (v) => m.t + ph - (v / top) * ph;
    const fmt = opts.fmt || ((v) => (opts.integer ? fmtInt(v) : Math.abs(v) < 100 ? v.toFixed(1) : fmtInt(v)));
    let svg = `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(opts.label || 'chart')}">`;
    svg += '<g class="grid">';
    for (const v of ticks) svg += `<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}"/>`;
    svg += '</g><g class="axis">';
    for (const v of ticks) svg += `<text x="${m.l - 6}" y="${(Y(v) + 3.5).toFixed(1)}" text-anchor="end">${fmtTick(v)}</text>`;
    const steps = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600].map((s) => s * 1000);
    const step = steps.find((s) => (x1 - x0) / s <= Math.max(2, pw / 85)) || steps[steps.length - 1];
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
      const x = X(t);
      if (x < m.l + 14 || x > W - m.r - 14) continue;
      svg += `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${H - m.b}" y2="${H - m.b + 4}"/>`;
      svg += `<text x="${x.toFixed(1)}" y="${H - 6}" text-anchor="middle">${fmtClock(t, step < 60000)}</text>`;
    }
    svg += `<path d="M${m.l},${m.t}V${H - m.b}H${W - m.r}"/></g>`;
    if (!empty) {
      series.forEach((s, i) => {
        const color = s.color || PALETTE[i % PALETTE.length];
        const pts = s.points.filter((p) => p[0] >= x0 - 1000);
        if (!pts.length) return;
        const d = pts.map((p, j) => `${j ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
        if (series.length === 1) {
          svg += `<path class="area" fill="${color}" d="${d}L${X(pts[pts.length - 1][0]).toFixed(1)},${Y(0)}L${X(pts[0][0]).toFixed(1)},${Y(0)}Z"/>`;
        }
        svg += `<path class="series" stroke="${color}" d="${d}"/>`;
      });
    } else {
      svg += `<text class="empty-text" x="${m.l + pw / 2}" y="${m.t + ph / 2}" text-anchor="middle">${esc(opts.empty || 'no traffic yet')}</text>`;
    }
    svg += `<g class="hover"></g><rect class="overlay" x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="transparent"/></svg>`;
    host.innerHTML = `${svg}<div class="chart-tip" hidden></div>`;
    if (opts.legend) {
      opts.legend.innerHTML = series.map((s, i) => `<span title="${esc(s.name)}"><i style="background:${s.color || PALETTE[i % PALETTE.length]}"></i>${esc(s.name)}${s.note ? ` <b>${esc(s.note)}</b>` : ''}</span>`).join('');
    }
    const el = host.firstElementChild;
    const tip = host.lastElementChild;
    const hoverG = el.querySelector('.hover');
    const show = (frac) => {
      host._hover = frac;
      if (frac == null || !series.length) {
        hoverG.innerHTML = '';
        tip.hidden = true;
        return;
      }
      const t = x0 + frac * (x1 - x0);
      let near = null;
      const rows = series.map((s, i) => {
        let best = null;
        for (const p of s.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
        if (best && (!near || Math.abs(best[0] - t) < Math.abs(near - t))) near = best[0];
        return { s, i, p: best };
      }).filter((r) => r.p);
      if (near == null) return;
      const x = X(near);
      hoverG.innerHTML = `<line class="hover-line" x1="${x}" x2="${x}" y1="${m.t}" y2="${H - m.b}"/>` +
        rows.map((r) => `<circle cx="${x}" cy="${Y(r.p[1])}" r="3" fill="${r.s.color || PALETTE[r.i % PALETTE.length]}"/>`).join('');
      rows.sort((a, b) => b.p[1] - a.p[1]);
      tip.innerHTML = `<div class="t">${fmtClock(near)}</div>` + rows.slice(0, 10).map((r) =>
        `<div><i style="background:${r.s.color || PALETTE[r.i % PALETTE.length]}"></i>${esc(r.s.name)}<b>${esc(fmt(r.p[1]))}${esc(opts.unit || '')}</b></div>`).join('');
      tip.hidden = false;
      const scale = (el.getBoundingClientRect().width || W) / W;
      const left = x * scale + 8 + 14;
      const tw = tip.offsetWidth;
      tip.style.left = `${left + tw > host.clientWidth ? Math.max(0, x * scale + 8 - tw - 10) : left}px`;
      tip.style.top = `${m.t + 4}px`;
    };
    el.addEventListener('mousemove', (e) => {
      const r = el.getBoundingClientRect();
      const sx = ((e.clientX - r.left) * W) / (r.width || W);
      show(clamp((sx - m.l) / pw, 0, 1));
    });
    el.addEventListener('mouseleave', () => { if (el.isConnected) show(null); });
    if (host._hover != null) show(host._hover);
    return el;
  }
  function chartCard(title, id, extra = '') {
    return `<section class="card"><header><h2>${esc(title)}</h2><span class="muted" id="${id}-now"></span>${extra}</header>` +
      `<div class="chart-host" id="${id}-chart"></div><div class="chart-legend" id="${id}-legend"></div></section>`;
  }
  /** A colour per series name that stays the same between refreshes. */
  const seriesColors = new Map();
  function colorFor(name) {
    if (!seriesColors.has(name)) seriesColors.set(name, PALETTE[seriesColors.size % 10]);
    return seriesColors.get(name);
  }
  /** Named timeline series, the busiest first; the rest summed as "other". */
  function topSeries(map, tl, limit = 8) {
    const entries = Object.entries(map || {}).map(([name, values]) => ({ name, values, total: sum(values) }));
    entries.sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
    const shown = entries.slice(0, limit).sort((a, b) => a.name.localeCompare(b.name));
    const rest = entries.slice(limit);
    const series = shown.map((e) => ({ name: e.name, color: colorFor(e.name), points: timelinePoints(e.values, tl), note: `${fmtRate(recentAvg(e.values))}/s` }));
    if (rest.length) {
      const n = Math.max(...rest.map((e) => e.values.length));
      const merged = Array.from({ length: n }, (_, i) => sum(rest.map((e) => e.values[e.values.length - n + i])));
      series.push({ name: `${rest.length} other`, color: PALETTE[10], points: timelinePoints(merged, tl), note: `${fmtRate(recentAvg(merged))}/s` });
    }
    return series;
  }
  function totalOf(map) {
    const arrays = Object.values(map || {});
    if (!arrays.length) return [];
    const n = Math.max(...arrays.map((a) => a.length));
    return Array.from({ length: n }, (_, i) => sum(arrays.map((a) => a[a.length - n + i])));
  }
  function tlDomain(tl) {
    const x1 = (tl && tl.endMs) || Date.now();
    return { x0: x1 - WINDOW_MS + ((tl && tl.intervalMs) || 1000), x1 };
  }

  // ---------------------------------------------------------------- overview: topology diagram
  const measure = document.createElement('canvas').getContext('2d');
  const fontFamily = getComputedStyle(document.body).fontFamily || 'sans-serif';
  function fit(text, px, font) {
    text = String(text == null ? '' : text);
    measure.font = `${font} ${fontFamily}`;
    if (measure.measureText(text).width <= px) return text;
    let lo = 0;
    let hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (measure.measureText(`${text.slice(0, mid)}…`).width <= px) lo = mid;
      else hi = mid - 1;
    }
    return `${text.slice(0, lo)}…`;
  }
  const appKey = (a) => `${a.context}/${a.component}`;
  function eventCount(c) {
    const last = num(c.lastToken);
    const first = num(c.firstToken) || 0;
    return last == null ? null : Math.max(0, last - first + 1);
  }
  function lastTokenText(c) {
    const t = num(c.lastToken);
    return t == null ? '' : t < 0 ? 'no events yet' : `last token ${t}`;
  }
  function isLeader(n) {
    return n.leader === true || String(n.role || '').toUpperCase() === 'LEADER';
  }
  function roleName(r) {
    const s = String(r || 'unknown').toLowerCase().replace(/_/g, '-');
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function appModel(app, w, compact) {
    const cols = w >= 330 ? 2 : 1;
    const max = cols * (compact ? 1 : 3);
    const groups = [['c', 'COMMANDS', app.commands], ['q', 'QUERIES', app.queries], ['p', 'PROCESSORS', app.processors]]
      .map(([k, label, list]) => [k, label, Array.from(list || [])])
      .filter((g) => g[2].length);
    let hgt = 48;
    const parts = groups.map(([k, label, items]) => {
      const shown = items.length > max ? items.slice(0, max - 1) : items;
      const more = items.length - shown.length;
      const rows = Math.ceil((shown.length + (more ? 1 : 0)) / cols);
      const part = { k, label, items, shown, more, y: hgt, rows };
      hgt += 16 + rows * 16 + 4;
      return part;
    });
    if (!parts.length) hgt += 18;
    return { cols, parts, h: hgt + 6 };
  }

  function layoutTopology(ov, width) {
    const nodes = ov.nodes || [];
    const contexts = (ov.contexts || []).slice();
    const apps = (ov.applications || []).slice().sort((a, b) => String(a.component).localeCompare(String(b.component)));
    for (const a of apps) if (!contexts.some((c) => c.name === a.context)) contexts.push({ name: a.context });
    const W = Math.max(width, 880);
    const nodeW = 176;
    const ctxW = 184;
    const appW = clamp(W - 32 - nodeW - ctxW - 2 * 120, 300, 520);
    const gap = Math.max(64, (W - 32 - nodeW - ctxW - appW) / 2);
    const xN = 16;
    const xC = xN + nodeW + gap;
    const xA = xC + ctxW + gap;
    const top = 34;
    const ctxH = 72;
    const nodeH = 64;
    let y = top;
    let lastCtxBottom = top - 18;
    const ctxBoxes = [];
    const appBoxes = [];
    for (const c of contexts) {
      const mine = apps.filter((a) => a.context === c.name);
      const groupTop = y;
      for (const a of mine) {
        const mdl = appModel(a, appW, apps.length > 10);
        appBoxes.push({ a, x: xA, y, w: appW, h: mdl.h, mdl, ctx: c.name });
        y += mdl.h + 12;
      }
      // A context with applications sits level with them; one without is stacked under the last.
      // A tall group keeps its context near the top, where it is seen without scrolling.
      let cy = mine.length ? groupTop + Math.min((y - 12 - groupTop - ctxH) / 2, 220) : lastCtxBottom + 18;
      cy = Math.max(cy, lastCtxBottom + 18);
      ctxBoxes.push({ c, x: xC, y: cy, w: ctxW, h: ctxH });
      lastCtxBottom = cy + ctxH;
      if (mine.length) y += 14;
    }
    const ctxTop = ctxBoxes.length ? ctxBoxes[0].y : top;
    const ctxBottom = ctxBoxes.length ? lastCtxBottom : top + nodeH;
    const nodesH = nodes.length * nodeH + Math.max(0, nodes.length - 1) * 16;
    let ny = Math.max(top, (ctxTop + ctxBottom) / 2 - nodesH / 2);
    const nodeBoxes = nodes.map((n) => {
      const b = { n, x: xN, y: ny, w: nodeW, h: nodeH };
      ny += nodeH + 16;
      return b;
    });
    const H = Math.max(y, lastCtxBottom + 16, ny, top + 120) + 8;
    return { W, H, xN, xC, xA, nodeW, ctxW, appW, nodeBoxes, ctxBoxes, appBoxes, top };
  }

  function curve(x1, y1, x2, y2) {
    const dx = Math.max(30, (x2 - x1) * 0.5);
    return `M${x1},${y1}C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
  }

  function topologySvg(ov, L, pinned) {
    const F = { title: '650 13px', sub: '11px', item: '11.5px', lbl: '700 9.5px' };
    let s = `<svg class="topology" width="${L.W}" height="${L.H}" viewBox="0 0 ${L.W} ${L.H}" role="img" aria-label="Topology">`;
    s += `<text class="col-title" x="${L.xN}" y="18">Myelin nodes</text><text class="col-title" x="${L.xC}" y="18">Contexts</text><text class="col-title" x="${L.xA}" y="18">Applications</text>`;
    // edges first, boxes over them
    for (const nb of L.nodeBoxes) {
      for (const cb of L.ctxBoxes) {
        s += `<path class="edge${isLeader(nb.n) ? ' leader' : ''}" d="${curve(nb.x + nb.w, nb.y + nb.h / 2, cb.x, cb.y + cb.h / 2)}"/>`;
      }
    }
    for (const ab of L.appBoxes) {
      const cb = L.ctxBoxes.find((c) => c.c.name === ab.ctx);
      if (cb) s += `<path class="edge" data-app="${esc(appKey(ab.a))}" d="${curve(cb.x + cb.w, cb.y + cb.h / 2, ab.x, ab.y + 22)}"/>`;
    }
    for (const nb of L.nodeBoxes) {
      const n = nb.n;
      const lead = isLeader(n);
      const tw = nb.w - 24;
      s += `<g class="node${lead ? ' leader' : ''}" transform="translate(${nb.x},${nb.y})"><title>${esc(n.name)} — ${esc(n.hostName || '')}:${esc(n.grpcPort || '')}</title>`;
      s += `<rect class="box" width="${nb.w}" height="${nb.h}" rx="8"/>`;
      s += `<circle cx="14" cy="19" r="4" fill="${lead ? 'var(--accent)' : 'var(--ok)'}"/>`;
      s += `<text class="title" x="24" y="23">${esc(fit(n.name, tw - 14, F.title))}</text>`;
      s += `<text class="sub" x="12" y="40">${esc(fit(`${n.hostName || '?'}:${n.grpcPort || ''}`, tw, F.sub))}</text>`;
      s += `<text class="role" x="12" y="56">${esc(roleName(n.role || (lead ? 'LEADER' : 'UNKNOWN')))}${n.self ? ' · this node' : ''}</text>`;
      s += '</g>';
    }
    if (!L.nodeBoxes.length) s += `<text class="placeholder" x="${L.xN}" y="${L.top + 20}">no nodes reported</text>`;
    for (const cb of L.ctxBoxes) {
      const c = cb.c;
      const sel = c.name === state.context;
      const count = eventCount(c);
      s += `<g class="ctx${sel ? ' selected' : ''}" data-context="${esc(c.name)}" transform="translate(${cb.x},${cb.y})"><title>Context ${esc(c.name)}${sel ? ' (selected)' : ' — click to select'}</title>`;
      s += `<rect class="box" width="${cb.w}" height="${cb.h}" rx="8"/>`;
      s += `<text class="title" x="12" y="22">${esc(fit(c.name, cb.w - 24, F.title))}</text>`;
      s += `<text class="sub" x="12" y="41" data-stat="token">${esc(lastTokenText(c))}</text>`;
      s += `<text class="sub" x="12" y="58" data-stat="count">${count == null ? '' : `${esc(fmtInt(count))} event${count === 1 ? '' : 's'}`}</text>`;
      s += '</g>';
    }
    for (const ab of L.appBoxes) {
      const a = ab.a;
      const inst = a.instances || [];
      const key = appKey(a);
      const pill = `${inst.length} instance${inst.length === 1 ? '' : 's'}`;
      measure.font = `650 10.5px ${fontFamily}`;
      const pw = Math.ceil(measure.measureText(pill).width) + 14;
      const perNode = {};
      for (const i of inst) perNode[i.node || '?'] = (perNode[i.node || '?'] || 0) + 1;
      const nodesText = Object.entries(perNode).map(([n, k]) => (k > 1 ? `${n} ×${k}` : n)).join(', ');
      s += `<g class="app${pinned === key ? ' pinned' : ''}" data-app="${esc(key)}" transform="translate(${ab.x},${ab.y})">`;
      s += `<rect class="box" width="${ab.w}" height="${ab.h}" rx="8"/>`;
      s += `<text class="title" x="12" y="22">${esc(fit(a.component, ab.w - pw - 32, F.title))}</text>`;
      s += `<rect class="pill" x="${ab.w - pw - 10}" y="9" width="${pw}" height="18" rx="9"/><text class="pill-text" x="${ab.w - 10 - pw / 2}" y="22" text-anchor="middle">${pill}</text>`;
      s += `<text class="sub" x="12" y="39">${esc(fit(nodesText ? `on ${nodesText}` : 'no instances', ab.w - 24, F.sub))}</text>`;
      const colW = (ab.w - 24) / ab.mdl.cols;
      if (!ab.mdl.parts.length) s += `<text class="more" x="12" y="${ab.mdl.h - 12}">no handlers or processors</text>`;
      for (const p of ab.mdl.parts) {
        s += `<line class="sep" x1="12" x2="${ab.w - 12}" y1="${p.y}" y2="${p.y}"/>`;
        s += `<text class="lbl" x="12" y="${p.y + 13}">${p.label} · ${p.items.length}</text>`;
        const cells = p.shown.map((t) => ({ t }));
        if (p.more) cells.push({ more: p.more });
        cells.forEach((cell, i) => {
          const cx = 12 + (i % ab.mdl.cols) * colW;
          const cy = p.y + 16 + Math.floor(i / ab.mdl.cols) * 16 + 12;
          if (cell.more) {
            s += `<text class="more" x="${cx}" y="${cy}">+${cell.more} more</text>`;
          } else {
            s += `<rect class="dot-${p.k}" x="${cx}" y="${cy - 8}" width="7" height="7" rx="1.5"/>`;
            s += `<text class="item" x="${cx + 12}" y="${cy}"><title>${esc(cell.t)}</title>${esc(fit(cell.t, colW - 20, F.item))}</text>`;
          }
        });
      }
      s += '</g>';
    }
    if (!L.appBoxes.length) s += `<text class="placeholder" x="${L.xA}" y="${L.top + 20}">no applications connected to ${esc(state.context)}</text>`;
    return `${s}</svg>`;
  }

  function instancesTable(a) {
    const inst = a.instances || [];
    if (!inst.length) return '<div class="muted">No instances.</div>';
    return `<table class="inst-table"><thead><tr><th>Client id</th><th>Node</th><th>Version</th></tr></thead><tbody>${inst.map((i) =>
      `<tr><td class="mono">${esc(i.clientId)}</td><td>${esc(i.node || '–')}</td><td>${esc(i.version || '–')}</td></tr>`).join('')}</tbody></table>`;
  }

  function overviewPage(root, scope) {
    root.innerHTML = `
      <div class="kpis" id="ov-kpis"></div>
      <section class="card">
        <header><h2>Topology</h2><span class="muted" id="topo-sub"></span>
          <div class="topo-legend"><span><i class="dot c"></i>command</span><span><i class="dot q"></i>query</span><span><i class="dot p"></i>event processor</span><span class="faint">hover an application for its instances, click to pin</span></div>
        </header>
        <div class="topo-wrap" id="topo-wrap"><div class="topo-tip" id="topo-tip" hidden></div></div>
        <div class="app-detail" id="app-detail" hidden></div>
      </section>
      <div class="grid grid-3">
        ${chartCard('Events appended / s', 'ov-ev')}
        ${chartCard('Commands / s', 'ov-cmd')}
        ${chartCard('Queries / s', 'ov-qry')}
      </div>`;
    const wrap = $('#topo-wrap', root);
    const tip = $('#topo-tip', root);
    const detail = $('#app-detail', root);
    const st = { sig: '', pinned: null, apps: new Map(), hover: null };

    const highlight = (key) => {
      if (st.hover === key) return;
      st.hover = key;
      $$('.app.hl, .edge.hl', wrap).forEach((e) => e.classList.remove('hl'));
      if (key) $$('[data-app]', wrap).forEach((e) => { if (e.dataset.app === key) e.classList.add('hl'); });
    };
    wrap.addEventListener('mousemove', (e) => {
      const g = e.target.closest && e.target.closest('g.app');
      const a = g && st.apps.get(g.dataset.app);
      if (!a) {
        highlight(null);
        tip.hidden = true;
        return;
      }
      highlight(g.dataset.app);
      tip.innerHTML = `<h4>${esc(a.component)} <span class="muted">in ${esc(a.context)}</span></h4>${instancesTable(a)}`;
      tip.hidden = false;
      const r = wrap.getBoundingClientRect();
      let x = e.clientX - r.left + wrap.scrollLeft + 16;
      let y = e.clientY - r.top + wrap.scrollTop + 14;
      if (x + tip.offsetWidth > wrap.scrollLeft + wrap.clientWidth - 4) x = e.clientX - r.left + wrap.scrollLeft - tip.offsetWidth - 12;
      if (y + tip.offsetHeight > wrap.scrollTop + wrap.clientHeight - 4) y = Math.max(wrap.scrollTop + 4, y - tip.offsetHeight - 24);
      tip.style.left = `${Math.max(4, x)}px`;
      tip.style.top = `${y}px`;
    });
    wrap.addEventListener('mouseleave', () => { highlight(null); tip.hidden = true; });
    wrap.addEventListener('click', (e) => {
      const c = e.target.closest && e.target.closest('g.ctx');
      if (c) { setContext(c.dataset.context); return; }
      const g = e.target.closest && e.target.closest('g.app');
      if (!g) return;
      st.pinned = st.pinned === g.dataset.app ? null : g.dataset.app;
      $$('g.app', wrap).forEach((x) => x.classList.toggle('pinned', x.dataset.app === st.pinned));
      renderDetail();
    });
    detail.addEventListener('click', (e) => {
      if (e.target.closest('.close')) {
        st.pinned = null;
        $$('g.app.pinned', wrap).forEach((x) => x.classList.remove('pinned'));
        renderDetail();
      }
    });
    function renderDetail() {
      const a = st.pinned && st.apps.get(st.pinned);
      if (!a) {
        detail.hidden = true;
        detail.innerHTML = '';
        return;
      }
      const list = (k, items) => (items && items.length ? `<ul>${Array.from(items).map((i) => `<li><i class="dot ${k}"></i>${esc(i)}</li>`).join('')}</ul>` : '<div class="faint">none</div>');
      detail.hidden = false;
      detail.innerHTML = `
        <div><button type="button" class="small close">Close</button><h4>${esc(a.component)} <span class="muted">· ${esc(a.context)} · ${(a.instances || []).length} instance(s)</span></h4>${instancesTable(a)}</div>
        <div><h4>Commands</h4>${list('c', a.commands)}</div>
        <div><h4>Queries</h4>${list('q', a.queries)}</div>
        <div><h4>Processors</h4>${list('p', a.processors)}</div>`;
    }

    function renderKpis(ov, tl) {
      const apps = ov.applications || [];
      const ctx = (ov.contexts || []).find((c) => c.name === state.context) || {};
      const leader = (ov.nodes || []).find(isLeader);
      const k = (label, value, small = '') => `<div class="kpi"><div class="k">${esc(label)}</div><div class="v" title="${esc(value)}">${esc(value)}${small ? `<small>${esc(small)}</small>` : ''}</div></div>`;
      $('#ov-kpis', root).innerHTML =
        k('Nodes', String((ov.nodes || []).length), leader ? `leader ${leader.name}` : 'no leader') +
        k('Contexts', String((ov.contexts || []).length)) +
        k('Applications', String(apps.length)) +
        k('Instances', String(sum(apps.map((a) => (a.instances || []).length)))) +
        k(`Events in ${state.context}`, fmtInt(eventCount(ctx))) +
        k('Events / s', tl ? fmtRate(recentAvg(tl.eventsAppended, 10)) : '–', 'last 10 s') +
        k('Commands / s', tl ? fmtRate(recentAvg(totalOf(tl.commands), 10)) : '–') +
        k('Queries / s', tl ? fmtRate(recentAvg(totalOf(tl.queries), 10)) : '–');
    }

    function renderTopology(ov) {
      const width = wrap.clientWidth || 1200;
      const apps = ov.applications || [];
      st.apps = new Map(apps.map((a) => [appKey(a), a]));
      const sig = JSON.stringify([width, state.context, st.pinned, ov.nodes, (ov.contexts || []).map((c) => c.name), apps,
        document.documentElement.dataset.theme]);
      const subtitle = `${(ov.nodes || []).length} node(s) · ${(ov.contexts || []).length} context(s) · ${apps.length} application(s) in ${state.context}`;
      $('#topo-sub', root).textContent = subtitle;
      if (sig !== st.sig) {
        st.sig = sig;
        const L = layoutTopology(ov, width);
        const old = $('svg.topology', wrap);
        const svg = h(topologySvg(ov, L, st.pinned));
        if (old) old.replaceWith(svg);
        else wrap.insertBefore(svg, tip);
        if (st.hover) { const k = st.hover; st.hover = null; highlight(k); }
      } else {
        for (const c of ov.contexts || []) {
          const g = $$('g.ctx', wrap).find((x) => x.dataset.context === c.name);
          if (!g) continue;
          const count = eventCount(c);
          g.querySelector('[data-stat="token"]').textContent = lastTokenText(c);
          g.querySelector('[data-stat="count"]').textContent = count == null ? '' : `${fmtInt(count)} event${count === 1 ? '' : 's'}`;
        }
      }
      if (st.pinned && !st.apps.has(st.pinned)) st.pinned = null;
      renderDetail();
    }

    function renderCharts(tl) {
      const dom = tlDomain(tl);
      const ev = tl.eventsAppended || [];
      const cmd = totalOf(tl.commands);
      const qry = totalOf(tl.queries);
      $('#ov-ev-now', root).textContent = `${fmtRate(recentAvg(ev))}/s now`;
      $('#ov-cmd-now', root).textContent = `${fmtRate(recentAvg(cmd))}/s now`;
      $('#ov-qry-now', root).textContent = `${fmtRate(recentAvg(qry))}/s now`;
      lineChart($('#ov-ev-chart', root), { ...dom, label: 'events appended per second', unit: '/s', height: 150, series: [{ name: 'events appended', color: PALETTE[0], points: timelinePoints(ev, tl) }] });
      lineChart($('#ov-cmd-chart', root), { ...dom, label: 'commands per second', unit: '/s', height: 150, series: [{ name: 'commands', color: PALETTE[1], points: timelinePoints(cmd, tl) }] });
      lineChart($('#ov-qry-chart', root), { ...dom, label: 'queries per second', unit: '/s', height: 150, series: [{ name: 'queries', color: PALETTE[2], points: timelinePoints(qry, tl) }] });
    }

    scope.poll(async () => {
      const [ov, tl] = await Promise.allSettled([scope.req(ctxUrl('/v1/myelin/overview')), scope.req(ctxUrl('/v1/myelin/timeline'))]);
      if (!scope.alive) return;
      if (ov.status === 'rejected') {
        if (tl.status === 'fulfilled') renderCharts(tl.value || {});
        throw ov.reason;
      }
      const data = ov.value || {};
      applyOverview(data);
      const timeline = tl.status === 'fulfilled' ? tl.value || {} : null;
      renderKpis(data, timeline);
      renderTopology(data);
      if (timeline) renderCharts(timeline);
      else report(tl.reason);
      scope.loaded();
    });
  }

  // ---------------------------------------------------------------- search
  const MAX_ROWS = 1000;
  const lastSearch = { kind: 'events', aggregate: '', payloadType: '', aggregateType: '', window: '100', follow: true };

  function prettyPayload(text) {
    const s = String(text == null ? '' : text);
    const t = s.trim();
    if (t[0] === '{' || t[0] === '[') {
      try {
        const json = JSON.stringify(JSON.parse(t), null, 2);
        return esc(json).replace(/(&quot;(?:[^&\\]|\\.|&(?!quot;))*?&quot;)(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
          (m, str, colon, lit, n) => (str ? `<span class="${colon ? 'j-key' : 'j-str'}">${str}</span>${colon || ''}` : lit ? `<span class="j-lit">${lit}</span>` : `<span class="j-num">${n}</span>`));
      } catch (e) { /* not JSON after all */ }
    }
    if (t[0] === '<' && t.length < 200000) {
      let depth = 0;
      const out = t.replace(/>\s*</g, '>\n<').split('\n').map((line) => {
        if (/^<\//.test(line)) depth = Math.max(0, depth - 1);
        const res = '  '.repeat(depth) + line;
        if (/^<[^!?/][^>]*[^/]>$/.test(line) && !/<\/[^>]+>$/.test(line)) depth += 1;
        return res;
      }).join('\n');
      return esc(out);
    }
    return esc(s);
  }

  function searchPage(root, scope) {
    root.innerHTML = `
      <div class="page-head"><h1>Search</h1><span class="sub">events and snapshots in context <b>${esc(state.context)}</b></span></div>
      <section class="card">
        <form id="search-form" class="search-bar" autocomplete="off">
          <select id="search-kind" title="Events or snapshots"><option value="events">Events</option><option value="snapshots">Snapshots</option></select>
          <input type="text" id="search-aggregate" placeholder="Aggregate id (optional)" title="Empty: the latest events of the context" spellcheck="false">
          <input type="text" id="search-payload-type" placeholder="Payload type" spellcheck="false">
          <input type="text" id="search-aggregate-type" placeholder="Aggregate type" spellcheck="false">
          <select id="search-window" title="How far back the latest events start"><option value="100">last 100</option><option value="1000">last 1,000</option><option value="10000">last 10,000</option></select>
          <span class="sep"></span>
          <label class="check" title="Keep following new events"><input type="checkbox" id="search-follow"> Follow live</label>
          <button type="submit" id="search-run" class="primary">Search</button>
        </form>
        <div class="search-status" id="search-status"><span>…</span></div>
        <div class="results-wrap">
          <table class="data events">
            <thead><tr><th class="num">Token</th><th>Time</th><th>Aggregate id</th><th class="num">Seq</th><th>Aggregate type</th><th>Payload type</th><th>Payload</th></tr></thead>
            <tbody id="search-results"></tbody>
          </table>
        </div>
      </section>`;
    const f = {
      kind: $('#search-kind', root), aggregate: $('#search-aggregate', root), payloadType: $('#search-payload-type', root),
      aggregateType: $('#search-aggregate-type', root), window: $('#search-window', root), follow: $('#search-follow', root),
    };
    f.kind.value = lastSearch.kind;
    f.aggregate.value = lastSearch.aggregate;
    f.payloadType.value = lastSearch.payloadType;
    f.aggregateType.value = lastSearch.aggregateType;
    f.window.value = lastSearch.window;
    f.follow.checked = lastSearch.follow;
    const tbody = $('#search-results', root);
    const status = $('#search-status', root);
    const events = new Map(); // row id -> event
    let rowSeq = 0;
    let run = null;

    const setStatus = (html) => { status.innerHTML = html; };
    function rowHtml(e, fresh) {
      const id = ++rowSeq;
      events.set(String(id), e);
      const payload = e.payloadData;
      const preview = `${e.payloadEncoding ? `[${e.payloadEncoding}] ` : ''}${payload.length > 1000 ? `${payload.slice(0, 1000)}…` : payload}`;
      return `<tr class="event-row${fresh ? ' fresh' : ''}" data-row="${id}"${e.token != null ? ` data-token="${esc(e.token)}"` : ''}>` +
        `<td class="num mono token">${e.token != null ? esc(e.token) : '<span class="faint">–</span>'}</td>` +
        `<td class="time" title="${num(e.timestamp) != null ? esc(new Date(e.timestamp).toISOString()) : ''}">${esc(fmtStamp(e.timestamp))}</td>` +
        `<td class="agg" title="${esc(e.aggregateIdentifier || '')}">${e.aggregateIdentifier ? esc(e.aggregateIdentifier) : '<span class="faint">–</span>'}</td>` +
        `<td class="num seq">${e.aggregateIdentifier ? esc(int(e.aggregateSequenceNumber)) : '<span class="faint">–</span>'}</td>` +
        `<td class="atype">${esc(e.aggregateType || '')}</td>` +
        `<td class="ptype" title="${esc(e.payloadType || '')}${e.payloadRevision ? ` (revision ${esc(e.payloadRevision)})` : ''}">${esc(e.payloadType || '')}${e.snapshot ? ' <span class="badge accent">snapshot</span>' : ''}</td>` +
        `<td class="payload">${esc(preview)}</td></tr>`;
    }
    function detailHtml(e) {
      const meta = Object.entries(e.metaData || {});
      const rows = [
        ['Message id', e.messageIdentifier], ['Token', e.token], ['Timestamp', num(e.timestamp) != null ? new Date(e.timestamp).toISOString() : ''],
        ['Aggregate', e.aggregateIdentifier ? `${e.aggregateType || ''} ${e.aggregateIdentifier} #${e.aggregateSequenceNumber}` : ''],
        ['Payload type', e.payloadType], ['Revision', e.payloadRevision], ['Encoding', e.payloadEncoding],
      ].filter((r) => r[1] !== undefined && r[1] !== null && r[1] !== '');
      return `<tr class="event-detail"><td colspan="7"><div class="detail-grid">
        <div><h4>Payload</h4><pre class="payload">${(e.payloadEncoding ? esc(e.payloadData) : prettyPayload(e.payloadData)) || '<span class="faint">(empty)</span>'}</pre></div>
        <div><h4>Message</h4><table class="kv">${rows.map((r) => `<tr><td>${esc(r[0])}</td><td class="mono">${esc(r[1])}</td></tr>`).join('')}</table>
        <h4 style="margin-top:12px">Metadata</h4>${meta.length ? `<table class="kv">${meta.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="mono">${esc(typeof v === 'string' ? v : JSON.stringify(v))}</td></tr>`).join('')}</table>` : '<div class="faint">none</div>'}</div>
      </div></td></tr>`;
    }
    tbody.addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr.event-row');
      if (!tr) return;
      if (window.getSelection && String(window.getSelection()).length) return;
      const next = tr.nextElementSibling;
      if (next && next.classList.contains('event-detail')) {
        next.remove();
        tr.classList.remove('open');
        return;
      }
      const e = events.get(tr.dataset.row);
      if (!e) return;
      tr.insertAdjacentHTML('afterend', detailHtml(e));
      tr.classList.add('open');
    });
    function trim() {
      let rows = tbody.querySelectorAll('tr.event-row');
      for (let i = rows.length - 1; i >= MAX_ROWS; i--) {
        const r = rows[i];
        const next = r.nextElementSibling;
        if (next && next.classList.contains('event-detail')) next.remove();
        events.delete(r.dataset.row);
        r.remove();
      }
      rows = null;
    }
    function clearRows() {
      tbody.innerHTML = '';
      events.clear();
    }
    function showEmpty(text) {
      tbody.innerHTML = `<tr class="empty"><td colspan="7">${esc(text)}</td></tr>`;
    }
    const matches = (q, e) => (!q.payloadType || e.payloadType === q.payloadType) && (!q.aggregateType || e.aggregateType === q.aggregateType);

    function stop() {
      if (run) {
        run.ctrl.abort();
        scope.release(run.ctrl);
        run = null;
      }
    }
    function readForm() {
      const q = {
        kind: f.kind.value === 'snapshots' ? 'snapshots' : 'events',
        aggregate: f.aggregate.value.trim(),
        payloadType: f.payloadType.value.trim(),
        aggregateType: f.aggregateType.value.trim(),
        window: f.window.value,
        follow: f.follow.checked,
      };
      Object.assign(lastSearch, q);
      return q;
    }
    const followNote = (r) => (r.q.follow ? ' · <span class="live-dot"></span>following live' : '');

    async function execute() {
      stop();
      const q = readForm();
      const ctrl = scope.controller();
      const me = { ctrl, q, count: 0 };
      run = me;
      const signal = ctrl.signal;
      clearRows();
      showEmpty('Searching…');
      setStatus('<span>Searching…</span>');
      try {
        if (q.kind === 'snapshots') await runSnapshots(me, signal);
        else if (q.aggregate) await runAggregate(me, signal);
        else await runTail(me, signal);
      } catch (e) {
        if (e.name !== 'AbortError') {
          report(e);
          if (run === me) setStatus(`<span class="errors">${esc(e.code || '')} ${esc(e.message)}</span>`);
          if (!tbody.querySelector('tr.event-row')) showEmpty('The search failed.');
        }
      }
    }

    async function runSnapshots(me, signal) {
      const q = me.q;
      if (!q.aggregate) {
        showEmpty('Snapshots are per aggregate: enter an aggregate id.');
        setStatus('<span>Enter an aggregate id to list its snapshots.</span>');
        scope.loaded();
        return;
      }
      let lastKey = null;
      for (;;) {
        const list = [];
        await streamEvents(ctxUrl('/v1/snapshots', { aggregateId: q.aggregate }), signal, (e) => list.push(e));
        const shown = list.filter((e) => matches(q, e));
        const key = JSON.stringify(shown.map((e) => [e.aggregateSequenceNumber, e.messageIdentifier]));
        if (key !== lastKey) {
          lastKey = key;
          clearRows();
          if (shown.length) tbody.innerHTML = shown.slice(-MAX_ROWS).map((e) => rowHtml(e)).join('');
          else showEmpty(`No snapshots for aggregate ${q.aggregate}.`);
        }
        setStatus(`<span>${shown.length} snapshot(s) of aggregate <b>${esc(q.aggregate)}</b>${followNote(me)}</span>`);
        scope.loaded();
        if (!q.follow) return;
        await sleep(REFRESH_MS * 2, signal);
      }
    }

    async function runAggregate(me, signal) {
      const q = me.q;
      let nextSeq = 0;
      let total = 0;
      let first = true;
      for (;;) {
        const batch = [];
        await streamEvents(ctxUrl('/v1/events', { aggregateId: q.aggregate, initialSequence: nextSeq, allowSnapshots: false }), signal, (e) => {
          batch.push(e);
          if (num(e.aggregateSequenceNumber) != null) nextSeq = Math.max(nextSeq, e.aggregateSequenceNumber + 1);
        });
        const shown = batch.filter((e) => matches(q, e));
        total += shown.length;
        if (first) {
          clearRows();
          if (shown.length) tbody.innerHTML = shown.slice(-MAX_ROWS).map((e) => rowHtml(e)).join('');
          else showEmpty(`No events for aggregate ${q.aggregate}${q.payloadType ? ` with payload type ${q.payloadType}` : ''}.`);
        } else if (shown.length) {
          const empty = tbody.querySelector('tr.empty');
          if (empty) empty.remove();
          tbody.insertAdjacentHTML('beforeend', shown.map((e) => rowHtml(e, true)).join(''));
        }
        first = false;
        setStatus(`<span>${total} event(s) of aggregate <b>${esc(q.aggregate)}</b>${total > MAX_ROWS ? ` (showing the first ${MAX_ROWS})` : ''}${followNote(me)}</span>`);
        scope.loaded();
        if (!q.follow) return;
        await sleep(REFRESH_MS, signal);
      }
    }

    async function runTail(me, signal) {
      const q = me.q;
      const ov = await scope.req(ctxUrl('/v1/myelin/overview'), { signal });
      applyOverview(ov);
      const c = ((ov && ov.contexts) || []).find((x) => x.name === state.context) || {};
      const last = num(c.lastToken) == null ? -1 : c.lastToken;
      const firstToken = num(c.firstToken) || 0;
      const windowSize = Number(q.window) || 100;
      const from = Math.max(firstToken, last - windowSize + 1);
      const list = [];
      let next = from;
      await streamEvents(ctxUrl('/v1/events', { trackingToken: from, maxEvents: windowSize, timeout: 0, payloadType: q.payloadType || undefined, aggregateType: q.aggregateType || undefined }), signal, (e) => {
        list.push(e);
        if (num(e.token) != null) next = Math.max(next, e.token + 1);
      });
      next = Math.max(next, last + 1);
      const shown = list.filter((e) => matches(q, e)).reverse();
      let total = shown.length;
      clearRows();
      if (shown.length) tbody.innerHTML = shown.slice(0, MAX_ROWS).map((e) => rowHtml(e)).join('');
      else showEmpty(last < firstToken ? 'The event store of this context is empty.' : `No matching events among the last ${windowSize}.`);
      const describe = () => {
        const filter = [q.payloadType && `payload type <b>${esc(q.payloadType)}</b>`, q.aggregateType && `aggregate type <b>${esc(q.aggregateType)}</b>`].filter(Boolean).join(', ');
        setStatus(`<span>${total} event(s)${filter ? ` with ${filter}` : ''} from token ${from}${total > MAX_ROWS ? ` (showing the newest ${MAX_ROWS})` : ''}${followNote(me)}</span>`);
      };
      describe();
      scope.loaded();
      if (!q.follow) return;
      // Live tail: long-lived streams from the next token; batches of rows are added every 250 ms.
      let pending = [];
      let flushing = false;
      const flush = () => {
        flushing = false;
        if (!pending.length || signal.aborted) return;
        const batch = pending.reverse();
        pending = [];
        const empty = tbody.querySelector('tr.empty');
        if (empty) empty.remove();
        tbody.insertAdjacentHTML('afterbegin', batch.map((e) => rowHtml(e, true)).join(''));
        trim();
        describe();
      };
      for (;;) {
        try {
          await streamEvents(ctxUrl('/v1/events', { trackingToken: next, maxEvents: 10000, timeout: 30, payloadType: q.payloadType || undefined, aggregateType: q.aggregateType || undefined }), signal, (e) => {
            if (num(e.token) != null) {
              if (e.token < next) return;
              next = e.token + 1;
            }
            if (!matches(q, e)) return;
            total += 1;
            pending.push(e);
            if (!flushing) {
              flushing = true;
              scope.later(flush, 250);
            }
          });
          await sleep(200, signal);
        } catch (e) {
          if (e.name === 'AbortError') throw e;
          report(e);
          await sleep(3000, signal);
        }
      }
    }

    $('#search-form', root).addEventListener('submit', (e) => {
      e.preventDefault();
      execute();
    });
    f.follow.addEventListener('change', () => {
      lastSearch.follow = f.follow.checked;
      if (f.follow.checked) execute();
      else if (run) {
        stop();
        setStatus(status.innerHTML.replace(/ · <span class="live-dot"><\/span>following live/, ' · stopped following'));
      }
    });
    f.kind.addEventListener('change', () => { lastSearch.kind = f.kind.value; });
    scope.onDispose(stop);
    execute();
  }

  // ---------------------------------------------------------------- commands and queries
  function handlersPage(kind) {
    const singular = kind === 'commands' ? 'command' : 'query';
    return (root, scope) => {
      root.innerHTML = `
        <div class="page-head"><h1>${kind === 'commands' ? 'Commands' : 'Queries'}</h1><span class="sub">${singular} handlers and their traffic in context <b>${esc(state.context)}</b></span></div>
        <div class="kpis" id="h-kpis"></div>
        ${chartCard(`Throughput per ${singular} (messages / s)`, 'h-tp')}
        <section class="card"><header><h2>${kind === 'commands' ? 'Commands' : 'Queries'}</h2><span class="muted" id="h-count"></span></header>
          <div class="card-body flush"><table class="data handlers" id="h-table">
            <thead><tr><th>Name</th><th>Handlers (client · component @ node)</th><th class="num">Count</th><th class="num">Errors</th><th class="num">Rate / s</th><th class="num">Mean ms</th><th class="num">p99 ms</th></tr></thead>
            <tbody></tbody></table></div></section>`;
      scope.poll(async () => {
        const [hd, tl] = await Promise.allSettled([scope.req(ctxUrl('/v1/myelin/handlers')), scope.req(ctxUrl('/v1/myelin/timeline'))]);
        if (!scope.alive) return;
        if (tl.status === 'fulfilled') {
          const t = tl.value || {};
          const series = topSeries(t[kind], t);
          $('#h-tp-now', root).textContent = `${fmtRate(recentAvg(totalOf(t[kind])))}/s total now`;
          lineChart($('#h-tp-chart', root), { ...tlDomain(t), label: `${kind} per second`, unit: '/s', height: 210, series, legend: $('#h-tp-legend', root) });
        }
        if (hd.status === 'rejected') throw hd.reason;
        const list = ((hd.value || {})[kind] || []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
        const handlers = new Set();
        list.forEach((x) => (x.handlers || []).forEach((hh) => handlers.add(hh.clientId)));
        const k = (label, value, cls = '') => `<div class="kpi"><div class="k">${esc(label)}</div><div class="v ${cls}">${esc(value)}</div></div>`;
        const errors = sum(list.map((x) => x.errors));
        $('#h-kpis', root).innerHTML = k(kind === 'commands' ? 'Commands' : 'Queries', String(list.length)) + k('Handler instances', String(handlers.size)) +
          k('Handled', fmtInt(sum(list.map((x) => x.count)))) + k('Errors', fmtInt(errors), errors ? 'errors' : '') + k('Rate / s', fmtRate(sum(list.map((x) => x.ratePerSecond))));
        $('#h-count', root).textContent = `${list.length} ${list.length === 1 ? singular : kind}`;
        $('#h-table tbody', root).innerHTML = list.length ? list.map((x) => `
          <tr class="handler-row" data-name="${esc(x.name)}">
            <td class="name-cell">${esc(x.name)}</td>
            <td><div class="handler-list">${(x.handlers || []).map((hh) => `<span class="handler" title="${esc(hh.clientId)} · ${esc(hh.component)} @ ${esc(hh.node)}"><b>${esc(hh.clientId)}</b> · ${esc(hh.component)} @ ${esc(hh.node)}</span>`).join('') || '<span class="faint">no handler</span>'}</div></td>
            <td class="num">${esc(int(x.count))}</td>
            <td class="num${x.errors ? ' errors' : ''}">${esc(int(x.errors))}</td>
            <td class="num">${esc(fmtRate(x.ratePerSecond))}</td>
            <td class="num">${esc(fmtMs(x.meanMs))}</td>
            <td class="num">${esc(fmtMs(x.p99Ms))}</td>
          </tr>`).join('') : `<tr class="empty"><td colspan="7">No ${singular} handlers registered in ${esc(state.context)} yet.</td></tr>`;
        if (tl.status === 'rejected') report(tl.reason);
        scope.loaded();
      });
    };
  }

  // ---------------------------------------------------------------- event processors
  const lagHistory = new Map(); // context|component|name -> [[t, lag]]
  const procKey = (p) => `${p.component}\u0000${p.name}\u0000${p.tokenStoreIdentifier || ''}`;
  function processorsPage(root, scope) {
    root.innerHTML = `
      <div class="page-head"><h1>Event processors</h1><span class="sub">in context <b>${esc(state.context)}</b></span></div>
      <div class="kpis" id="p-kpis"></div>
      ${chartCard('Total lag per processor (events behind the head)', 'p-lag', '<span class="faint" style="margin-left:auto">sampled by this page</span>')}
      <div id="p-list"></div>`;
    const list = $('#p-list', root);
    const entries = new Map(); // key -> {sec, p, rows: Map}
    let emptyEl = null;

    function section(p) {
      const sec = h(`<section class="card processor" data-processor="${esc(p.name)}" data-component="${esc(p.component)}">
        <header>
          <div class="proc-title"><h3>${esc(p.name)}</h3><span class="muted">${esc(p.component)} · token store <span class="mono ts"></span></span></div>
          <span class="badge accent mode"></span>
          <span class="processor-status"></span>
          <div class="proc-actions">
            <button type="button" class="small" data-action="pause" title="Pause the processor on every instance">Pause</button>
            <button type="button" class="small" data-action="start" title="Start the processor on every instance">Start</button>
            <button type="button" class="small" data-action="split" title="Split the largest segment">Split</button>
            <button type="button" class="small" data-action="merge" title="Merge the smallest segment with its sibling">Merge</button>
          </div>
        </header>
        <div class="proc-summary">
          <div class="stat"><span class="k">Head token</span><span class="v head"></span></div>
          <div class="stat"><span class="k">Total lag</span><span class="v lag"></span></div>
          <div class="stat"><span class="k">Segments</span><span class="v segs"></span></div>
          <div class="stat"><span class="k">Instances</span><span class="v insts"></span></div>
          <div class="lagbar"><div class="caption"><span class="cap-l"></span><span class="cap-r"></span></div><div class="bar"><i></i></div></div>
        </div>
        <div class="proc-body">
          <div><h4>Instances</h4><table class="data inst"><thead><tr><th>Client</th><th>State</th><th class="num">Threads</th></tr></thead><tbody></tbody></table></div>
          <div class="seg-pane"><h4>Segments</h4><table class="data segs"><thead><tr><th class="num">Segment</th><th>Part</th><th>Owner</th><th class="num">Token</th><th class="num">Lag</th><th>Progress</th><th>State</th><th>Move to</th></tr></thead><tbody></tbody></table></div>
        </div>
        <div class="action-result" aria-live="polite"></div>
      </section>`);
      const entry = { sec, p, rows: new Map(), busy: false };
      sec.addEventListener('click', (e) => {
        const b = e.target.closest('button[data-action]');
        if (!b || b.disabled) return;
        const action = b.dataset.action;
        if (action === 'move') {
          const tr = b.closest('tr.segment');
          const target = tr.querySelector('select.move-target').value;
          act(entry, action, tr.dataset.segment, target);
        } else act(entry, action);
      });
      sec.addEventListener('change', (e) => {
        if (e.target.matches('select.move-target')) e.target.dataset.touched = '1';
      });
      return entry;
    }

    async function act(entry, action, segment, target) {
      const p = entry.p;
      const result = entry.sec.querySelector('.action-result');
      const paths = { pause: '/pause', start: '/start', split: '/segments/split', merge: '/segments/merge', move: `/segments/${enc(segment)}/move` };
      const what = action === 'move' ? `move segment ${segment} to ${target}` : action;
      if (action === 'move' && !target) {
        result.className = 'action-result err';
        result.textContent = 'move: choose a target instance first';
        return;
      }
      entry.busy = true;
      setButtons(entry);
      result.className = 'action-result';
      result.textContent = `${what}…`;
      try {
        const r = await scope.req(url(`/v1/components/${enc(p.component)}/processors/${enc(p.name)}${paths[action]}`,
          { context: state.context, tokenStoreIdentifier: p.tokenStoreIdentifier == null ? '' : p.tokenStoreIdentifier, target: action === 'move' ? target : undefined }), { method: 'PATCH' });
        const outcome = (r && r.result) || (r && r.success === false ? 'FAILED' : 'SUCCESS');
        const inst = ((r && r.instances) || []).map((i) => `${i.clientId} ${i.success ? '✓' : i.error ? `✗ ${typeof i.error === 'string' ? i.error : i.error.message || JSON.stringify(i.error)}` : outcome === 'ACCEPTED' ? '(no answer yet)' : '✗'}`);
        if (action === 'move') $$('select.move-target', entry.sec).forEach((sel) => { delete sel.dataset.touched; });
        result.className = `action-result ${outcome === 'SUCCESS' ? 'ok' : outcome === 'ACCEPTED' ? '' : 'err'}`;
        const message = r && r.message ? ` — ${r.message}` : '';
        result.textContent = `${what}: ${outcome}${message}${inst.length ? ` (${inst.join(', ')})` : ''} · ${fmtClock(Date.now())}`;
      } catch (e) {
        if (e.name === 'AbortError') return;
        result.className = 'action-result err';
        result.textContent = `${what} failed: ${e.code || ''} ${e.message}`.replace(/\s+/g, ' ');
        report(e);
      } finally {
        entry.busy = false;
        if (scope.alive) {
          setButtons(entry);
          scope.kick();
          scope.later(() => scope.kick(), 600);
        }
      }
    }
    function setButtons(entry) {
      const streaming = entry.p.isStreaming !== false;
      $$('button[data-action]', entry.sec).forEach((b) => {
        const segAction = b.dataset.action === 'split' || b.dataset.action === 'merge';
        b.disabled = entry.busy || (segAction && !streaming);
      });
    }

    function segmentRow(s) {
      return h(`<table><tbody><tr class="segment" data-segment="${esc(s.id)}">
        <td class="num seg-id">${esc(s.id)}</td><td class="part"></td><td class="owner"></td><td class="num pos"></td><td class="num lag"></td>
        <td><span class="seg-bar"><i></i></span></td><td class="state"></td>
        <td><div class="move-cell"><select class="move-target" title="Target instance"></select><button type="button" class="small" data-action="move">Move</button></div></td>
      </tr></tbody></table>`).querySelector('tr');
    }
    function segState(s) {
      if (s.error) return `<span class="badge err" title="${esc(s.error)}">error: ${esc(s.error)}</span>`;
      if (s.replaying) return '<span class="badge warn">replaying</span>';
      if (s.caughtUp) return '<span class="badge ok">caught up</span>';
      return '<span class="badge warn">catching up</span>';
    }

    function update(entry, p) {
      entry.p = p;
      const { sec } = entry;
      const running = p.running !== false;
      const st = sec.querySelector('.processor-status');
      st.textContent = running ? 'running' : 'paused';
      st.className = `processor-status ${running ? 'running' : 'paused'}`;
      sec.querySelector('.ts').textContent = p.tokenStoreIdentifier || '–';
      sec.querySelector('.mode').textContent = p.mode || (p.isStreaming === false ? 'Subscribing' : 'Streaming');
      const segs = (p.segments || []).slice().sort((a, b) => a.id - b.id);
      const insts = p.instances || [];
      const head = num(p.headToken);
      const totalLag = sum(segs.map((s) => s.lag));
      sec.querySelector('.head').textContent = int(head);
      sec.querySelector('.lag').textContent = p.isStreaming === false ? '–' : int(totalLag);
      sec.querySelector('.segs').textContent = p.isStreaming === false ? '–' : String(segs.length);
      sec.querySelector('.insts').textContent = String(insts.length);
      const minPos = segs.length ? Math.min(...segs.map((s) => num(s.tokenPosition) || 0)) : null;
      const maxLag = segs.length ? Math.max(...segs.map((s) => num(s.lag) || 0)) : 0;
      const frac = head != null && head > 0 && minPos != null ? clamp((minPos + 1) / (head + 1), 0, 1) : segs.length ? 1 : 0;
      sec.querySelector('.lagbar .bar').hidden = p.isStreaming === false;
      const bar = sec.querySelector('.lagbar .bar');
      bar.firstElementChild.style.width = `${(frac * 100).toFixed(1)}%`;
      const behind = segs.some((s) => !s.caughtUp || s.error);
      bar.classList.toggle('behind', behind);
      sec.querySelector('.cap-l').textContent = p.isStreaming === false ? 'subscribing processor: handles events as they are published' : `slowest segment at token ${int(minPos)}`;
      sec.querySelector('.cap-r').textContent = p.isStreaming === false ? '' : maxLag > 0 ? `${int(maxLag)} behind head` : 'caught up';
      sec.querySelector('.inst tbody').innerHTML = insts.length ? insts.map((i) => `<tr>
          <td class="inst-name">${esc(i.clientId)}</td>
          <td>${i.error ? '<span class="badge err">error</span>' : i.running === false ? '<span class="badge warn">paused</span>' : '<span class="badge ok">running</span>'}</td>
          <td class="num">${esc(int(i.activeThreads))} / ${esc(int(i.availableThreads))}</td></tr>`).join('')
        : '<tr class="empty"><td colspan="3">No instance reports this processor.</td></tr>';
      const segBody = sec.querySelector('table.segs tbody');
      const pane = sec.querySelector('.seg-pane');
      pane.hidden = p.isStreaming === false && !segs.length;
      const clients = insts.map((i) => i.clientId);
      const clientKey = clients.join('\n');
      const seen = new Set();
      let prev = null;
      for (const s of segs) {
        const id = String(s.id);
        seen.add(id);
        let tr = entry.rows.get(id);
        if (!tr) {
          tr = segmentRow(s);
          entry.rows.set(id, tr);
        }
        const want = prev ? prev.nextElementSibling : segBody.firstElementChild;
        if (want !== tr) segBody.insertBefore(tr, want);
        prev = tr;
        tr.querySelector('.part').textContent = `1/${int(s.onePartOf)}`;
        const owner = tr.querySelector('.owner');
        owner.textContent = s.claimedBy || 'unclaimed';
        owner.title = s.claimedBy || 'No instance claims this segment';
        owner.classList.toggle('faint', !s.claimedBy);
        tr.querySelector('.pos').textContent = int(s.tokenPosition);
        tr.querySelector('.lag').textContent = int(s.lag);
        const sb = tr.querySelector('.seg-bar');
        const pos = num(s.tokenPosition);
        sb.firstElementChild.style.width = `${(head != null && head >= 0 && pos != null ? clamp((pos + 1) / (head + 1), 0, 1) * 100 : 0).toFixed(1)}%`;
        sb.classList.toggle('behind', !s.caughtUp || !!s.error);
        const stateHtml = segState(s);
        const stCell = tr.querySelector('.state');
        if (stCell.innerHTML !== stateHtml) stCell.innerHTML = stateHtml;
        const sel = tr.querySelector('select.move-target');
        if (sel.dataset.clients !== clientKey) {
          const keep = sel.dataset.touched ? sel.value : '';
          sel.innerHTML = clients.map((c) => `<option value="${esc(c)}">${esc(c)}${c === s.claimedBy ? ' (owner)' : ''}</option>`).join('');
          sel.dataset.clients = clientKey;
          const preferred = keep && clients.includes(keep) ? keep : clients.find((c) => c !== s.claimedBy) || clients[0] || '';
          sel.value = preferred;
        } else if (!sel.dataset.touched) {
          const preferred = clients.find((c) => c !== s.claimedBy) || clients[0] || '';
          if (sel.value !== preferred) sel.value = preferred;
        }
        for (const o of sel.options) {
          const label = `${o.value}${o.value === s.claimedBy ? ' (owner)' : ''}`;
          if (o.textContent !== label) o.textContent = label;
        }
        tr.querySelector('button[data-action="move"]').disabled = entry.busy || !clients.length;
      }
      for (const [id, tr] of entry.rows) {
        if (!seen.has(id)) {
          tr.remove();
          entry.rows.delete(id);
        }
      }
      let empty = segBody.querySelector('tr.empty');
      if (!segs.length && !empty) segBody.insertAdjacentHTML('beforeend', '<tr class="empty"><td colspan="8">No segments claimed or reported yet.</td></tr>');
      else if (segs.length && empty) empty.remove();
      empty = null;
      setButtons(entry);
    }

    scope.poll(async () => {
      const data = await scope.req(ctxUrl('/v1/myelin/processors'));
      if (!scope.alive) return;
      const procs = (Array.isArray(data) ? data : []).slice().sort((a, b) => `${a.component}/${a.name}`.localeCompare(`${b.component}/${b.name}`));
      const now = Date.now();
      const seen = new Set();
      let prev = null;
      for (const p of procs) {
        const key = procKey(p);
        seen.add(key);
        let entry = entries.get(key);
        if (!entry) {
          entry = section(p);
          entries.set(key, entry);
        }
        const want = prev ? prev.nextElementSibling : list.firstElementChild;
        if (want !== entry.sec) list.insertBefore(entry.sec, want);
        prev = entry.sec;
        update(entry, p);
        if (p.isStreaming !== false) {
          const hk = `${state.context}\u0000${key}`;
          const hist = lagHistory.get(hk) || [];
          hist.push([now, sum((p.segments || []).map((s) => s.lag))]);
          while (hist.length && hist[0][0] < now - WINDOW_MS) hist.shift();
          lagHistory.set(hk, hist);
        }
      }
      for (const [key, entry] of entries) {
        if (!seen.has(key)) {
          entry.sec.remove();
          entries.delete(key);
        }
      }
      if (!procs.length && !emptyEl) {
        emptyEl = h(`<section class="card"><div class="card-body muted">No event processors reported in ${esc(state.context)}. Processors appear here once an application connects and sends its processor status.</div></section>`);
        list.appendChild(emptyEl);
      } else if (procs.length && emptyEl) {
        emptyEl.remove();
        emptyEl = null;
      }
      const streaming = procs.filter((p) => p.isStreaming !== false);
      const series = streaming.map((p) => ({
        name: procs.filter((x) => x.name === p.name).length > 1 ? `${p.name} (${p.component})` : p.name,
        color: colorFor(`processor\u0000${procKey(p)}`),
        points: lagHistory.get(`${state.context}\u0000${procKey(p)}`) || [],
        note: int(sum((p.segments || []).map((s) => s.lag))),
      }));
      let first = now;
      for (const sr of series) if (sr.points.length && sr.points[0][0] < first) first = sr.points[0][0];
      lineChart($('#p-lag-chart', root), { x0: Math.max(now - WINDOW_MS, Math.min(first, now - 60000)), x1: now, label: 'total lag per processor', height: 140, integer: true, series, legend: $('#p-lag-legend', root), empty: streaming.length ? 'no lag' : 'no streaming processors yet' });
      const k = (label, value, cls = '') => `<div class="kpi"><div class="k">${esc(label)}</div><div class="v ${cls}">${esc(value)}</div></div>`;
      const paused = procs.filter((p) => p.running === false).length;
      const errs = sum(procs.map((p) => (p.segments || []).filter((s) => s.error).length));
      $('#p-kpis', root).innerHTML = k('Processors', String(procs.length)) + k('Running', String(procs.length - paused)) + k('Paused', String(paused)) +
        k('Segments', String(sum(procs.map((p) => (p.segments || []).length)))) + k('Total lag', fmtInt(sum(streaming.map((p) => sum((p.segments || []).map((s) => s.lag)))))) +
        k('Segments in error', String(errs), errs ? 'errors' : '');
      scope.loaded();
    });
  }

  // ---------------------------------------------------------------- cluster
  function clusterPage(root, scope) {
    root.innerHTML = `
      <div class="page-head"><h1>Cluster</h1><span class="sub">raft replication group and node health</span></div>
      <div class="kpis" id="c-kpis"></div>
      <section class="card"><header><h2>Nodes</h2><span class="muted" id="c-sub"></span></header>
        <div class="card-body flush"><table class="data" id="c-nodes">
          <thead><tr><th>Node</th><th>Role</th><th>Host</th><th class="num">gRPC</th><th class="num">HTTP</th><th>Internal</th><th class="num">Match index</th><th class="num">Lag</th><th style="width:18%">Replication</th></tr></thead>
          <tbody></tbody></table></div></section>
      <div class="grid grid-2">
        ${chartCard('Commit lag (entries)', 'c-lag')}
        ${chartCard('Connected clients', 'c-clients')}
      </div>
      <section class="card" style="margin-top:14px"><header><h2>Health of this node</h2><span class="muted">/actuator/health</span></header><div class="card-body" id="c-health"></div></section>`;
    scope.poll(async () => {
      const [cl, hl, tl] = await Promise.allSettled([scope.req('/v1/myelin/cluster'), fetchHealth(), scope.req(ctxUrl('/v1/myelin/timeline'))]);
      if (!scope.alive) return;
      if (hl.status === 'fulfilled') {
        applyHealth(hl.value);
        renderHealth(hl.value || {});
      }
      if (tl.status === 'fulfilled') {
        const t = tl.value || {};
        const dom = tlDomain(t);
        $('#c-lag-now', root).textContent = `${int((t.commitLag || []).slice(-1)[0])} now`;
        $('#c-clients-now', root).textContent = `${int((t.connectedClients || []).slice(-1)[0])} now`;
        lineChart($('#c-lag-chart', root), { ...dom, label: 'commit lag', integer: true, height: 160, series: [{ name: 'commit lag', color: PALETTE[1], points: timelinePoints(t.commitLag, t) }], empty: 'no lag' });
        lineChart($('#c-clients-chart', root), { ...dom, label: 'connected clients', integer: true, height: 160, series: [{ name: 'connected clients', color: PALETTE[0], points: timelinePoints(t.connectedClients, t) }], empty: 'no clients connected' });
      }
      if (cl.status === 'rejected') throw cl.reason;
      renderCluster(cl.value || {}, hl.status === 'fulfilled' ? hl.value : null);
      if (tl.status === 'rejected') report(tl.reason);
      scope.loaded();
    });
    function renderCluster(c, hl) {
      const nodes = c.nodes || [];
      const commit = num(c.commitIndex);
      const k = (label, value, cls = '') => `<div class="kpi"><div class="k">${esc(label)}</div><div class="v ${cls}" title="${esc(value)}">${esc(value)}</div></div>`;
      const status = (hl && hl.status) || '?';
      $('#c-kpis', root).innerHTML = k('Health', status, status === 'UP' ? '' : 'errors') + k('Leader', c.leader || 'none') + k('Term', int(c.term)) +
        k('Commit index', int(commit)) + k('Applied index', int(c.appliedIndex != null ? c.appliedIndex : hl && hl.components && hl.components.raft && hl.components.raft.details && hl.components.raft.details.appliedIndex)) +
        k('Nodes', String(nodes.length));
      $('#c-sub', root).textContent = `${nodes.length} voter(s), term ${int(c.term)}`;
      $('#c-nodes tbody', root).innerHTML = nodes.length ? nodes.map((n) => {
        const lead = isLeader(n) || n.name === c.leader;
        const role = String(n.role || (lead ? 'LEADER' : 'UNKNOWN')).toUpperCase();
        const cls = role === 'LEADER' ? 'accent' : role === 'FOLLOWER' ? 'ok' : 'warn';
        const mi = num(n.matchIndex);
        const frac = mi != null && commit ? clamp(mi / commit, 0, 1) : null;
        return `<tr class="cluster-node" data-node="${esc(n.name)}">
          <td class="name-cell">${esc(n.name)} ${n.self ? '<span class="badge">this node</span>' : ''}</td>
          <td><span class="badge ${cls} role">${esc(roleName(role))}</span></td>
          <td class="mono">${esc(n.hostName || '–')}</td><td class="num">${esc(int(n.grpcPort))}</td><td class="num">${esc(int(n.httpPort))}</td>
          <td class="mono">${esc(n.internal || '–')}</td><td class="num">${esc(int(mi))}</td>
          <td class="num${(num(n.lag) || 0) > 0 ? ' errors' : ''}">${esc(int(n.lag))}</td>
          <td>${frac == null ? '<span class="faint">known on the leader</span>' : `<span class="seg-bar${(num(n.lag) || 0) > 0 ? ' behind' : ''}" style="width:100%"><i style="width:${(frac * 100).toFixed(1)}%"></i></span>`}</td></tr>`;
      }).join('') : '<tr class="empty"><td colspan="9">No nodes reported.</td></tr>';
    }
    function renderHealth(hl) {
      const comps = hl.components || {};
      const show = (v) => {
        if (v == null) return '–';
        if (Array.isArray(v)) return v.map((x) => (x && typeof x === 'object' ? Object.entries(x).map(([a, b]) => `${a} ${b}`).join(', ') : x)).join(' · ') || '–';
        return typeof v === 'object' ? JSON.stringify(v) : v;
      };
      const kv = (obj) => `<table class="kv">${Object.entries(obj || {}).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="mono">${esc(show(v))}</td></tr>`).join('')}</table>`;
      const parts = Object.entries(comps).map(([name, comp]) => {
        const s = (comp && comp.status) || '?';
        return `<div><h4 style="margin:0 0 6px">${esc(name)} <span class="badge ${s === 'UP' ? 'ok' : 'err'}">${esc(s)}</span></h4>${kv(comp && comp.details)}</div>`;
      });
      $('#c-health', root).innerHTML = parts.length ? `<div class="grid grid-2">${parts.join('')}</div>` : `<span class="muted">status ${esc(hl.status || '?')}</span>`;
    }
  }

  // ---------------------------------------------------------------- start
  const RENDER = {
    overview: overviewPage,
    search: searchPage,
    commands: handlersPage('commands'),
    queries: handlersPage('queries'),
    processors: processorsPage,
    cluster: clusterPage,
  };
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && current) {
      current.kick();
      topbarTick();
    }
  });
  window.addEventListener('unhandledrejection', (e) => {
    if (e.reason && e.reason.name === 'AbortError') e.preventDefault();
  });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (current) current.kick(); }, 200);
  });

  (async () => {
    try {
      const me = await request('/v1/public/me', { open: true });
      if (me && me.name) $('#node-name').textContent = me.name;
      if (me && me.authentication) {
        try {
          showUser(await whoAmI());
        } catch (e) {
          if (e.status === 401 || e.status === 403) askForLogin(loginReason(e), e);
          else report(e);
        }
      }
    } catch (e) {
      /* an older node without /v1/public/me: the first call that needs a token will ask */
    }
    route();
    topbarTick();
    setInterval(topbarTick, 3000);
  })();
})();
