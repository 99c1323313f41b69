// The sipedge dashboard: plain ES modules served by sipedge, no build step. It reads the
// management API like any other client; every value from the API is inserted as text.
import { drawLadder, summary } from './ladder.js';

const view = document.getElementById('view');
const statusEl = document.getElementById('status');
const login = document.getElementById('login');
let refreshTimer = null;

// ---------------------------------------------------------------- API and DOM helpers
const token = () => sessionStorage.getItem('sipedge-token') || '';

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    login.hidden = false;
    throw new Error('the API wants a token');
  }
  const data = (res.headers.get('content-type') || '').includes('json') ? await res.json() : null;
  if (!res.ok) {
    const detail = data && data.detail;
    throw new Error(typeof detail === 'string' ? detail : `HTTP ${res.status}`);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function table(columns, rows, empty = 'Nothing here.') {
  if (!rows.length) return el('p', { class: 'empty' }, empty);
  return el('table', {},
    el('thead', {}, el('tr', {}, columns.map(([title]) => el('th', {}, title)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, columns.map(([, cell]) => el('td', {}, cell(r)))))));
}

const clock = (t) => new Date(t * 1000).toLocaleTimeString();
const secs = (n) => (n < 120 ? `${n.toFixed(0)} s` : `${(n / 60).toFixed(1)} min`);
const callLink = (callId) => el('a', { href: `#/call/${encodeURIComponent(callId)}`, class: 'callid' }, callId);

function card(name, metric, value, note = '') {
  return el('div', { class: 'card', 'data-metric': metric },
    el('div', { class: 'value' }, value), el('div', { class: 'name' }, name),
    note ? el('div', { class: 'note' }, note) : null);
}

function button(text, action, confirmText) {
  return el('button', {
    type: 'button',
    onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      try { await action(); setStatus(`${text}: done`); } catch (e) { setStatus(e.message, true); }
      render();
    },
  }, text);
}

function setStatus(text, bad = false) {
  statusEl.textContent = text;
  statusEl.className = bad ? 'status bad' : 'status';
}

// ---------------------------------------------------------------- overview
const WINDOW = 300; // seconds shown by the calls-per-second chart

function rateChart(history) {
  const w = 600;
  const h = 120;
  const slot = w / WINDOW;
  const points = history.slice(-WINDOW);
  const peak = Math.max(1, ...points.map((p) => p.calls_started));
  const ns = 'http://www.w3.org/2000/svg';
  const chart = document.createElementNS(ns, 'svg');
  chart.setAttribute('viewBox', `0 0 ${w} ${h}`);
  chart.setAttribute('class', 'chart');
  chart.setAttribute('aria-label', 'calls per second');
  points.forEach((p, i) => {
    if (!p.calls_started) return;
    const bar = document.createElementNS(ns, 'rect');
    const bh = (p.calls_started / peak) * (h - 16);
    bar.setAttribute('x', String((WINDOW - points.length + i) * slot));
    bar.setAttribute('y', String(h - bh));
    bar.setAttribute('width', String(Math.max(slot - 0.5, 1)));
    bar.setAttribute('height', String(bh));
    chart.append(bar);
  });
  chart.setAttribute('preserveAspectRatio', 'none');
  const caption = `calls started per second over the last ${WINDOW / 60} minutes (peak ${peak}/s)`;
  return el('figure', { class: 'chart' }, chart, el('figcaption', {}, caption));
}

async function overview() {
  const [stats, history, active, recent, captured, relay] = await Promise.all([
    api('/stats'), api('/stats/history?seconds=300'), api('/calls'),
    api('/calls/recent?limit=10'), api('/capture?limit=10'), api('/relay'),
  ]);
  const lastMinute = history.slice(-60).reduce((sum, p) => sum + p.calls_started, 0);
  const relayText = stats.relay_nodes ? `${stats.relay_nodes_up}/${stats.relay_nodes} up` : 'none';
  view.replaceChildren(
    el('section', { class: 'cards' },
      card('Calls now', 'calls-active', stats.calls_active),
      card('Calls/s, last minute', 'calls-rate', (lastMinute / 60).toFixed(2),
        `${lastMinute} call${lastMinute === 1 ? '' : 's'}`),
      card('Calls started', 'calls-started', stats.calls.started || 0),
      card('Registrations', 'registrations', stats.registrations, `${stats.aors} AORs`),
      card('Bans', 'bans', stats.bans),
      card('Media relay', 'relay', relayText),
      card('Loop lag', 'loop-lag', `${stats.loop_lag_ms.toFixed(1)} ms`)),
    el('h2', {}, 'Calls per second'), rateChart(history),
    el('h2', {}, 'Active calls'), callsTable(active, false),
    el('h2', {}, 'Recent calls'), callsTable(recent, false, 'No call ended yet.'),
    el('h2', {}, 'Recently captured'),
    table([['Call-ID', (c) => callLink(c.call_id)], ['First message', (c) => c.first_line],
      ['Messages', (c) => c.messages], ['Last', (c) => clock(c.last)]], captured, 'No message captured.'),
    el('h2', {}, 'Media relay nodes'),
    table([['Node', (n) => n.label], ['Up', (n) => (n.available ? 'yes' : 'no')],
      ['Round trip', (n) => (n.rtt_ms === null ? '-' : `${n.rtt_ms.toFixed(1)} ms`)],
      ['Commands', (n) => n.commands], ['Timeouts', (n) => n.timeouts]], relay, 'No rtpengine.'));
  return true;
}

// ---------------------------------------------------------------- calls
function callsTable(calls, withEnd, empty = 'No call.') {
  const cols = [
    ['Call-ID', (c) => callLink(c.call_id)], ['State', (c) => c.state],
    ['From', (c) => c.caller.uri], ['To', (c) => c.request_uri],
    ['Started', (c) => clock(c.created)], ['Duration', (c) => secs(c.duration)],
  ];
  if (withEnd) {
    cols.push(['', (c) => (c.state === 'confirmed'
      ? button('End', () => api(`/calls/${encodeURIComponent(c.key)}`, { method: 'DELETE' }),
        `End call ${c.call_id} (BYE both ways)?`)
      : '')]);
  } else {
    cols.push(['End reason', (c) => c.end_reason || '']);
  }
  return table(cols, calls, empty);
}

async function calls() {
  const [active, recent] = await Promise.all([api('/calls'), api('/calls/recent?limit=50')]);
  view.replaceChildren(el('h2', {}, 'Active calls'), callsTable(active, true),
    el('h2', {}, 'Recent calls'), callsTable(recent, false, 'No call ended yet.'));
  return true;
}

// ---------------------------------------------------------------- registrations
async function registrations() {
  const input = el('input', { type: 'search', placeholder: 'AOR contains…', id: 'aor-query' });
  const results = el('div');
  const load = async () => {
    const q = encodeURIComponent(input.value.trim());
    const regs = await api(`/registrations?limit=500&aor=${q}`);
    results.replaceChildren(table([
      ['AOR', (r) => r.aor], ['Contact', (r) => r.contact], ['Received', (r) => r.received],
      ['Transport', (r) => r.transport], ['Expires in', (r) => secs(r.expires_in)],
      ['User-Agent', (r) => r.user_agent || ''],
      ['', (r) => button('Remove', () => api(
        `/registrations/${encodeURIComponent(r.aor)}?contact=${encodeURIComponent(r.contact)}`,
        { method: 'DELETE' }), `Remove ${r.contact}?`)],
    ], regs, 'No registration.'));
  };
  input.addEventListener('input', () => load().catch((e) => setStatus(e.message, true)));
  view.replaceChildren(el('h2', {}, 'Registrations'), input, results);
  await load();
  return false;
}

// ---------------------------------------------------------------- bans
async function bans() {
  const list = await api('/bans');
  const ip = el('input', { name: 'ip', placeholder: '203.0.113.7', required: 'required' });
  const seconds = el('input', { name: 'seconds', type: 'number', value: '3600', min: '1' });
  const form = el('form', { class: 'inline' }, ip, seconds, el('button', { type: 'submit' }, 'Ban'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('/bans', { method: 'POST', body: { ip: ip.value.trim(), seconds: Number(seconds.value), reason: 'manual' } });
      setStatus(`banned ${ip.value}`);
    } catch (err) { setStatus(err.message, true); }
    render();
  });
  view.replaceChildren(el('h2', {}, 'Bans'), form, table([
    ['Address', (b) => b.ip], ['Reason', (b) => b.reason], ['Expires in', (b) => secs(b.expires_in)],
    ['', (b) => button('Lift', () => api(`/bans/${encodeURIComponent(b.ip)}`, { method: 'DELETE' }))],
  ], list, 'No active ban.'));
  return false;
}

// ---------------------------------------------------------------- call view (ladder)
async function callView(callId) {
  if (!callId) {
    const captured = await api('/capture?limit=200');
    view.replaceChildren(el('h2', {}, 'Captured calls'), table([
      ['Call-ID', (c) => callLink(c.call_id)], ['First message', (c) => c.first_line],
      ['Messages', (c) => c.messages], ['First', (c) => clock(c.first)], ['Last', (c) => clock(c.last)],
    ], captured, 'No message captured.'));
    return true;
  }
  const messages = await api(`/capture/${encodeURIComponent(callId)}`);
  const detail = el('pre', { id: 'message', class: 'message' }, 'Click a message to see its text.');
  const ladder = el('div', { class: 'ladder-box' });
  view.replaceChildren(el('h2', {}, 'Call ', el('code', {}, callId)),
    el('p', {}, `${messages.length} messages: `, messages.map((m) => summary(m.first_line)).join(', ')),
    ladder, detail);
  drawLadder(ladder, messages, (i) => {
    const m = messages[i];
    detail.textContent = `${m.direction} ${m.transport} ${m.src} -> ${m.dst} at ${clock(m.time)}, ${m.bytes} bytes\n\n${m.text}`;
    for (const g of ladder.querySelectorAll('g.msg')) g.classList.toggle('selected', g.dataset.index === String(i));
  });
  return false;
}

// ---------------------------------------------------------------- routing
const VIEWS = { overview, registrations, calls, bans };

async function render() {
  clearTimeout(refreshTimer);
  const [, name = 'overview', ...rest] = (window.location.hash || '#/overview').split('/');
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === name);
  try {
    const again = name === 'call' ? await callView(decodeURIComponent(rest.join('/'))) : await (VIEWS[name] || overview)();
    document.body.dataset.ready = name;
    if (again) refreshTimer = setTimeout(render, 2000);
  } catch (e) {
    setStatus(e.message, true);
  }
}

login.addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('sipedge-token', document.getElementById('token').value);
  login.hidden = true;
  render();
});
window.addEventListener('hashchange', render);
render();
