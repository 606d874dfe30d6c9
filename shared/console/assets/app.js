// Baton console: a single page over Baton's HTTP API (same origin only). No framework, no build.
// Signed in by the HttpOnly session cookie; every request carries the session's CSRF value in
// X-Baton-CSRF. The API checks every request: what the page hides (RBAC) it also refuses.
'use strict';

const API = '/orchestrator/v1';
const NODE_PAGE = 50;
const JOB_PAGE = 25;
const MAX_EVENT_ROWS = 200;
const POLL_MS = 1000;
const TERMINAL_JOB = ['stopped', 'finished', 'failed'];
const TERMINAL_NODE = ['finished', 'failed', 'errored', 'skipped', 'stopped'];
const NODE_STATES = ['new', 'ready', 'running', 'finished', 'failed', 'errored', 'skipped', 'stopped'];
const JOB_STATES = ['new', 'ready', 'running', 'stopping', 'stopped', 'finished', 'failed'];
const EVENT_STATE = {
  node_running: 'running', node_finished: 'finished', node_failed: 'failed',
  node_errored: 'errored', node_skipped: 'skipped', node_stopped: 'stopped',
};

const session = { csrf: null, me: null };
let cleanups = []; // what the current page stops when the page changes (timers, streams)

// ---- DOM helpers: elements are built, never parsed from strings (no HTML injection). ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// put replaces el's children with kids (nested arrays flattened; null, undefined and false dropped).
function put(el, ...kids) {
  el.replaceChildren();
  for (const c of kids.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function $(sel, root) { return (root || document).querySelector(sel); }

let idSeq = 0;
function uid(prefix) { idSeq += 1; return `${prefix}-${idSeq}`; }

function stateBadge(state) { return h('span', { class: `state state-${state}` }, state); }

// One formatter for every timestamp: toLocaleString builds a new one per call, which shows on
// a page of hundreds of events.
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });

function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : timeFormat.format(d);
}

function say(msg) { $('#status').textContent = msg || ''; }

function alertBox(msg) { return h('div', { class: 'alert', role: 'alert' }, msg); }

// ---- API ----

class APIError extends Error {
  constructor(status, body) {
    super((body && body.msg) || `HTTP ${status}`);
    this.status = status;
    this.kind = body && body.kind;
    this.details = (body && body.details) || {};
  }
}

async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (session.csrf) headers['X-Baton-CSRF'] = session.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store', signal: opts.signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { msg: text }; }
  if (!resp.ok) {
    const err = new APIError(resp.status, data);
    if (resp.status === 401 && !opts.quiet) signedOut('Your session has ended: sign in again.');
    throw err;
  }
  return data;
}

function taskPath(name) {
  const [mod, task] = name.includes('::') ? name.split('::') : [name, 'init'];
  return `${API}/tasks/${encodeURIComponent(mod)}/${encodeURIComponent(task)}`;
}

// ---- permissions (display only: the API enforces) ----

function can(action) { return !!(session.me && session.me.actions && session.me.actions[action]); }

function canRunTask(name) {
  const t = (session.me && session.me.runnable_tasks) || {};
  const short = name.endsWith('::init') ? name.slice(0, -6) : name;
  return !!(t['*'] || t[name] || t[short]);
}

function canRunAnyTask() { return Object.keys((session.me && session.me.runnable_tasks) || {}).length > 0; }

// ---- session ----

async function loadMe() {
  session.me = await api('GET', '/baton/v1/whoami');
  $('#who-login').textContent = session.me.login;
  $('#who').hidden = false;
  $('#nav').hidden = false;
  $('#nav-run-task').parentElement.hidden = !canRunAnyTask();
  $('#nav-run-puppet').parentElement.hidden = !can('puppet:run');
}

function signedOut(msg, remember = true) {
  session.csrf = null;
  session.me = null;
  $('#who').hidden = true;
  $('#nav').hidden = true;
  if (location.hash !== '#/login') {
    if (remember) sessionStorage.setItem('baton-after-login', location.hash);
    location.hash = '#/login';
  }
  if (msg) say(msg);
}

async function signOut() {
  try { await api('DELETE', '/baton/v1/session', undefined, { quiet: true }); } catch (e) { /* cleared below */ }
  sessionStorage.removeItem('baton-after-login');
  signedOut('Signed out.', false); // the hash change shows the sign-in page
}

function loginPage(main) {
  const err = h('div');
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-hint' });
  const form = h('form', { class: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    put(err);
    const button = $('button', form);
    button.disabled = true;
    try {
      const s = await api('POST', '/baton/v1/session', { token: input.value.trim() }, { quiet: true });
      session.csrf = s.csrf;
      input.value = '';
      await loadMe();
      say('');
      const next = sessionStorage.getItem('baton-after-login');
      sessionStorage.removeItem('baton-after-login');
      location.hash = next && next !== '#/login' ? next : '#/jobs';
    } catch (e) {
      put(err, alertBox(e.status === 401 ? 'That token is not valid (unknown, revoked or expired).' : e.message));
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      button.disabled = false;
    }
  } },
  h('div', { class: 'field' },
    h('label', { for: 'token' }, 'API token'),
    input,
    h('span', { class: 'hint', id: 'token-hint' },
      'An API token: on the server running baton serve, the admin token is in <data>/admin.token; ',
      'anyone can make one of their own with baton login or baton token issue. ',
      'The token is exchanged for a session cookie and is not kept by the browser.')),
  h('button', { type: 'submit' }, 'Sign in'));
  put(main, h('h1', { tabindex: '-1' }, 'Sign in to Baton'), err, form);
  input.focus();
}

// ---- router ----

const routes = [
  [/^#\/login$/, loginPage, null],
  [/^#\/jobs(?:\?(.*))?$/, jobsPage, 'jobs'],
  [/^#\/jobs\/(\d+)$/, jobPage, 'jobs'],
  [/^#\/run\/task(?:\/(.+))?$/, runTaskPage, 'task'],
  [/^#\/run\/puppet$/, runPuppetPage, 'puppet'],
  [/^#\/inventory$/, inventoryPage, 'inventory'],
  [/^#\/inventory\/(.+)$/, nodePage, 'inventory'],
  [/^#\/groups$/, groupsPage, 'groups'],
];

let firstRoute = true;

async function route() {
  for (const stop of cleanups) { try { stop(); } catch (e) { /* ignore */ } }
  cleanups = [];
  const main = $('#main');
  let hash = location.hash || '#/jobs';
  if (!session.me && hash !== '#/login') {
    try {
      const s = await api('GET', '/baton/v1/session', undefined, { quiet: true });
      session.csrf = s.csrf;
      await loadMe();
    } catch (e) {
      signedOut(e.status === 401 ? '' : `Cannot reach the server: ${e.message}`);
      hash = '#/login';
    }
  }
  if (session.me && hash === '#/login') { location.hash = '#/jobs'; return; }
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    put(main);
    try {
      await page(main, ...m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x))));
    } catch (e) {
      if (e.status !== 401) main.append(alertBox(e.message));
    }
    // After a change of page, focus moves to its heading (screen readers announce it); a fresh
    // load leaves focus at the start of the document (the skip link comes first).
    const h1 = $('h1', main);
    if (h1 && page !== loginPage && !firstRoute) { h1.setAttribute('tabindex', '-1'); h1.focus(); }
    firstRoute = false;
    return;
  }
  location.hash = '#/jobs';
}

// Poll calls fn every ms until the page changes; fn returning false stops it.
function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { if (e.status === 401) again = false; else say(`Update failed: ${e.message}`); }
    if (again && !stopped) timer = setTimeout(tick, ms);
  };
  cleanups.push(() => { stopped = true; clearTimeout(timer); });
  timer = setTimeout(tick, ms);
}

// ---- jobs ----

function jobTitle(j) {
  if (j.type === 'deploy') return 'Puppet run';
  return (j.options && j.options.task) || j.command || j.type;
}

async function jobsPage(main, query) {
  const q = new URLSearchParams(query || '');
  const page = Math.max(1, parseInt(q.get('page') || '1', 10) || 1);
  const f = { state: q.get('state') || '', type: q.get('type') || '', owner: q.get('owner') || '', task: q.get('task') || '' };
  const select = (id, label, value, options) => h('div', { class: 'field' }, h('label', { for: id }, label),
    h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t))));
  const form = h('form', { class: 'row', 'aria-label': 'Filter jobs', onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['state', 'type', 'owner', 'task']) { const v = form.elements[k].value.trim(); if (v) p.set(k, v); }
    location.hash = `#/jobs${p.toString() ? `?${p}` : ''}`;
  } },
  select('state', 'State', f.state, [['', 'Any'], ...JOB_STATES.map((s) => [s, s])]),
  select('type', 'Type', f.type, [['', 'Any'], ['task', 'Task'], ['deploy', 'Puppet run']]),
  h('div', { class: 'field' }, h('label', { for: 'owner' }, 'Owner'), h('input', { id: 'owner', name: 'owner', value: f.owner, size: 12 })),
  h('div', { class: 'field' }, h('label', { for: 'task' }, 'Task contains'), h('input', { id: 'task', name: 'task', value: f.task, size: 14 })),
  h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Filter')));
  const results = h('div', {}, h('p', {}, 'Loading jobs…'));
  main.append(h('h1', {}, 'Jobs'), form, results);

  const base = new URLSearchParams({ order_by: 'timestamp', order: 'desc' });
  if (f.type) base.set('type', f.type);
  if (f.task) base.set('task', f.task);
  let items = [];
  let total = 0;
  let more = false;
  if (!f.state && !f.owner) {
    base.set('limit', JOB_PAGE); base.set('offset', (page - 1) * JOB_PAGE);
    const r = await api('GET', `${API}/jobs?${base}`);
    items = r.items; total = r.pagination.total;
    more = page * JOB_PAGE < total;
  } else {
    // The API filters by type and task; state and owner are matched here, reading the
    // newest jobs in batches until this page is full.
    const want = page * JOB_PAGE + 1;
    const matched = [];
    const batch = 200;
    for (let offset = 0; matched.length < want; offset += batch) {
      base.set('limit', batch); base.set('offset', offset);
      const r = await api('GET', `${API}/jobs?${base}`);
      for (const j of r.items) {
        if ((!f.state || j.state === f.state) && (!f.owner || (j.owner && j.owner.login === f.owner))) matched.push(j);
      }
      if (offset + batch >= r.pagination.total) break;
    }
    items = matched.slice((page - 1) * JOB_PAGE, page * JOB_PAGE);
    more = matched.length > page * JOB_PAGE;
    total = null;
  }
  const rows = items.map((j) => h('tr', {},
    h('td', {}, h('a', { href: `#/jobs/${j.name}` }, `Job ${j.name}`)),
    h('td', {}, jobTitle(j)),
    h('td', {}, stateBadge(j.state)),
    h('td', {}, (j.owner && j.owner.login) || ''),
    h('td', { class: 'num' }, j.node_count),
    h('td', {}, fmtTime(j.created_timestamp)),
    h('td', {}, fmtTime(j.finished_timestamp)),
    h('td', {}, j.description || '')));
  const pageLink = (n, label) => {
    const p = new URLSearchParams(query || ''); p.set('page', n);
    return h('a', { href: `#/jobs?${p}`, class: 'button secondary' }, label);
  };
  put(results, 
    items.length === 0 ? h('p', {}, 'No jobs match.') : h('table', { id: 'jobs-table' },
      h('caption', {}, total === null ? `Page ${page}` : `Page ${page} of ${Math.max(1, Math.ceil(total / JOB_PAGE))} (${total} jobs)`),
      h('thead', {}, h('tr', {}, ['Job', 'What', 'State', 'Owner', 'Nodes', 'Created', 'Finished', 'Description'].map((t) => h('th', { scope: 'col', class: t === 'Nodes' ? 'num' : undefined }, t)))),
      h('tbody', {}, rows)),
    h('nav', { class: 'pager', 'aria-label': 'Pages of jobs' },
      page > 1 ? pageLink(page - 1, 'Previous page') : null,
      more ? pageLink(page + 1, 'Next page') : null));
}

// The job page reads one page of the node table at a time (GET /jobs/{id}/nodes?limit=&offset=,
// with state= when filtered), and applies the job's events (GET /jobs/{id}/events?start=N) to
// the rows shown as they come; the counts come from the job. The page is read again when it
// changes, when the job ends (for the results), when the selected node ends (for its result)
// and, with a state filter, at most once a poll when events moved nodes: never per change.
async function jobPage(main, id) {
  const view = { page: 1, filter: '', selected: null, total: 0 };
  const nodes = new Map(); // the rows of the page shown, and the selected node's
  let order = []; // the names on the page shown, in the job's order
  async function loadNodes() {
    const q = new URLSearchParams({ limit: NODE_PAGE, offset: (view.page - 1) * NODE_PAGE });
    if (view.filter) q.set('state', view.filter);
    const r = await api('GET', `${API}/jobs/${id}/nodes?${q}`);
    view.total = r.pagination.total;
    const pages = Math.max(1, Math.ceil(view.total / NODE_PAGE));
    if (view.page > pages) { view.page = pages; return loadNodes(); } // fewer nodes match now
    const selected = view.selected && nodes.get(view.selected);
    nodes.clear();
    if (selected) nodes.set(selected.name, selected);
    for (const n of r.items) nodes.set(n.name, n);
    order = r.items.map((n) => n.name);
    return r;
  }
  const [job] = await Promise.all([api('GET', `${API}/jobs/${id}`), loadNodes()]);
  let next = 1;
  let current = job;
  const allEvents = [];

  const summary = h('div', { id: 'job-summary' });
  const counts = h('ul', { class: 'counts', id: 'job-counts', 'aria-live': 'polite' });
  const actions = h('div', { class: 'toolbar' });
  const nodeTable = h('div', { id: 'nodes' });
  const detail = h('div', { id: 'node-detail' });
  const eventsBox = h('div', { class: 'events', tabindex: '0', role: 'region', 'aria-label': 'Events' });
  const showPage = async () => {
    try { await loadNodes(); } catch (e) { say(`Update failed: ${e.message}`); return; }
    renderNodes();
  };
  const filter = h('select', { id: 'node-state-filter', onchange: () => { view.filter = filter.value; view.page = 1; showPage(); } },
    h('option', { value: '' }, 'Any'), NODE_STATES.map((s) => h('option', { value: s }, s)));

  main.append(h('h1', {}, `Job ${id}: ${jobTitle(job)}`), summary, counts, actions,
    h('h2', {}, 'Nodes'), h('div', { class: 'toolbar' }, h('label', { for: 'node-state-filter' }, 'Show nodes in state'), filter),
    nodeTable, detail, h('h2', {}, 'Events'), eventsBox);

  function renderSummary() {
    const j = current;
    const opts = j.options || {};
    put(summary, h('dl', { class: 'summary' },
      h('dt', {}, 'State'), h('dd', {}, stateBadge(j.state)),
      h('dt', {}, 'Owner'), h('dd', {}, (j.owner && j.owner.login) || ''),
      h('dt', {}, 'Environment'), h('dd', {}, (j.environment && j.environment.name) || ''),
      j.description ? [h('dt', {}, 'Description'), h('dd', {}, j.description)] : null,
      opts.params && Object.keys(opts.params).length ? [h('dt', {}, 'Parameters'), h('dd', {}, h('code', {}, JSON.stringify(opts.params)))] : null,
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(j.created_timestamp)),
      h('dt', {}, 'Finished'), h('dd', {}, fmtTime(j.finished_timestamp) || '—')));
    const c = j.node_states || {};
    put(counts, h('li', {}, `Nodes: ${j.node_count}`),
      NODE_STATES.filter((s) => c[s]).map((s) => h('li', { 'data-state': s }, `${s}: `, h('strong', {}, c[s]))));
    put(actions);
    if (can('jobs:stop') && !TERMINAL_JOB.includes(j.state)) {
      const force = h('input', { type: 'checkbox', id: 'force-stop' });
      actions.append(h('button', { type: 'button', class: 'danger', id: 'stop-job', onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api('POST', `${API}/command/stop`, { job: String(id), force: force.checked });
          say(`Stopping job ${id}.`);
        } catch (e) {
          actions.append(alertBox(e.message));
          ev.target.disabled = false;
        }
      } }, 'Stop job'), h('span', { class: 'field inline' }, force, h('label', { for: 'force-stop' }, 'Force (kill running tasks)')));
    }
  }

  function renderNodes() {
    const pages = Math.max(1, Math.ceil(view.total / NODE_PAGE));
    const rows = order.map((name) => {
      const n = nodes.get(name);
      const result = n.result ? JSON.stringify(n.result) : ((n.details && n.details.message) || '');
      return h('tr', { 'data-node': name, class: view.selected === name ? 'selected' : undefined },
        h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Show node ${name}`, onclick: () => selectNode(name) }, name)),
        h('td', { class: 'node-state' }, stateBadge(n.state)),
        h('td', { class: 'num' }, typeof n.duration === 'number' ? `${n.duration.toFixed(1)} s` : ''),
        h('td', {}, result.length > 120 ? `${result.slice(0, 120)}…` : result));
    });
    put(nodeTable, 
      h('table', { id: 'nodes-table' },
        h('caption', {}, `${view.total} nodes${view.filter ? ` in state ${view.filter}` : ''}; page ${view.page} of ${pages}`),
        h('thead', {}, h('tr', {}, ['Node', 'State', 'Duration', 'Result or message'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)),
      pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Pages of nodes' },
        h('button', { type: 'button', class: 'secondary', disabled: view.page <= 1, onclick: () => { view.page -= 1; showPage(); } }, 'Previous nodes'),
        h('button', { type: 'button', class: 'secondary', disabled: view.page >= pages, onclick: () => { view.page += 1; showPage(); } }, 'Next nodes')) : null);
  }

  function renderEvents(evs) {
    if (!eventsBox.firstChild) {
      eventsBox.append(h('table', { id: 'events-table' }, h('caption'),
        h('thead', {}, h('tr', {}, ['#', 'Time', 'Type', 'Message'].map((t) => h('th', { scope: 'col' }, t)))), h('tbody')));
    }
    const tbody = $('tbody', eventsBox);
    const rows = evs.slice(-MAX_EVENT_ROWS).map((e) => h('tr', {}, h('td', {}, e.id), h('td', {}, fmtTime(e.timestamp)), h('td', {}, e.type), h('td', {}, e.message)));
    tbody.append(...rows);
    // The latest MAX_EVENT_ROWS events only: a large job's history does not grow the page.
    while (tbody.rows.length > MAX_EVENT_ROWS) tbody.deleteRow(0);
    const hidden = allEvents.length - tbody.rows.length;
    $('caption', eventsBox).textContent = hidden > 0 ? `The latest ${tbody.rows.length} of ${allEvents.length} events` : `${allEvents.length} events`;
    if (evs.length) eventsBox.scrollTop = eventsBox.scrollHeight;
  }

  let output = null; // the selected node's output follower
  async function selectNode(name) {
    view.selected = name;
    renderNodes();
    if (output) output.stop();
    const pre = h('pre', { id: 'node-output', tabindex: '0', 'aria-label': `Output of ${name}` });
    const outNote = h('p', { class: 'note', id: 'output-note' }, 'Waiting for output…');
    const result = h('div', { id: 'node-result' });
    put(detail, h('section', { class: 'panel', 'aria-labelledby': 'node-detail-title' },
      h('h2', { id: 'node-detail-title', tabindex: '-1' }, `Node ${name}`), result,
      h('h3', {}, 'Output'), outNote, pre));
    renderResult(name);
    $('#node-detail-title').focus();
    output = followOutput(id, name, pre, outNote);
    cleanups.push(() => output && output.stop());
  }

  async function renderResult(name) {
    const box = $('#node-result');
    if (!box || view.selected !== name) return;
    let n = nodes.get(name);
    if (TERMINAL_NODE.includes(n.state) && n.result === undefined) {
      // A node that ended after its row was read: read the page shown again, which has its result.
      await loadNodes();
      renderNodes();
      n = nodes.get(name);
      if (view.selected !== name) return;
    }
    put(box, h('dl', { class: 'summary' },
      h('dt', {}, 'State'), h('dd', {}, stateBadge(n.state)),
      h('dt', {}, 'Started'), h('dd', {}, fmtTime(n.start_timestamp) || '—'),
      h('dt', {}, 'Finished'), h('dd', {}, fmtTime(n.finish_timestamp) || '—'),
      n.details && n.details.message ? [h('dt', {}, 'Message'), h('dd', {}, n.details.message)] : null),
    n.result ? [h('h3', {}, 'Result'), h('pre', { class: 'json', id: 'node-result-json' }, JSON.stringify(n.result, null, 2))] : null);
  }

  // applyEvents moves nodes to the state their events say, in order: applied to events the node
  // list already reflects, they change nothing, so no change is missed between the two reads.
  function applyEvents(items) {
    const touched = new Set();
    for (const e of items) {
      const node = e.details && e.details.node;
      const st = EVENT_STATE[e.type];
      if (node && st && nodes.has(node) && nodes.get(node).state !== st) {
        const n = nodes.get(node);
        n.state = st;
        n.details = { ...(n.details || {}), message: e.message };
        if (TERMINAL_NODE.includes(st)) delete n.result; // read when shown
        if (st === 'running' && !n.start_timestamp) n.start_timestamp = e.timestamp;
        if (TERMINAL_NODE.includes(st)) n.finish_timestamp = e.timestamp;
        if (n.start_timestamp && n.finish_timestamp) n.duration = (new Date(n.finish_timestamp) - new Date(n.start_timestamp)) / 1000;
        touched.add(node);
      }
    }
    return touched;
  }

  const first = await api('GET', `${API}/jobs/${id}/events?start=1`);
  next = parseInt(first['next-events'].event, 10) || next;
  applyEvents(first.items);
  allEvents.push(...first.items);
  renderSummary();
  renderNodes();
  renderEvents(first.items);

  let quietAfterEnd = 0;
  poll(async () => {
    const r = await api('GET', `${API}/jobs/${id}/events?start=${next}`);
    next = parseInt(r['next-events'].event, 10) || next;
    const touched = applyEvents(r.items);
    // Filtered by state: nodes moved in or out of it, so the page is read again (once a poll).
    if (view.filter && r.items.some((e) => EVENT_STATE[e.type] && e.details && e.details.node)) await loadNodes();
    if (r.items.length) {
      allEvents.push(...r.items);
      renderEvents(r.items);
      renderNodes();
      if (view.selected && touched.has(view.selected)) renderResult(view.selected);
    }
    if (r.items.length || !TERMINAL_JOB.includes(current.state)) {
      const was = current.state;
      current = await api('GET', `${API}/jobs/${id}`);
      renderSummary();
      if (TERMINAL_JOB.includes(current.state) && !TERMINAL_JOB.includes(was)) {
        // The job has ended: one read of the page shown brings its nodes' results.
        await loadNodes();
        renderNodes();
        if (view.selected) renderResult(view.selected);
      }
    }
    if (TERMINAL_JOB.includes(current.state) && !r.items.length) {
      quietAfterEnd += 1;
      return quietAfterEnd < 3;
    }
    return true;
  }, POLL_MS);
}

// followOutput shows a node's output as it is written: server-sent events read with fetch (an
// EventSource cannot send the CSRF header) until the server ends the stream (after 25 s), then
// polling ?after= from the last chunk shown; a chunk already shown is dropped by its seq.
function followOutput(jobId, node, pre, note) {
  const url = `/baton/v1/jobs/${encodeURIComponent(jobId)}/nodes/${encodeURIComponent(node)}/output`;
  const ctrl = new AbortController();
  let last = 0;
  let stopped = false;
  let timer = null;
  const append = (c) => {
    if (typeof c.seq !== 'number' || c.seq <= last) return; // duplicates are dropped by sequence number
    last = c.seq;
    note.textContent = '';
    pre.append(c.stream === 'stderr' ? h('span', { class: 'stderr' }, c.data) : document.createTextNode(c.data));
    if (pre.scrollHeight - pre.scrollTop - pre.clientHeight < 80) pre.scrollTop = pre.scrollHeight;
  };
  const done = () => { note.textContent = last ? 'Output complete.' : 'This node printed no output.'; };
  const headers = () => ({ 'X-Baton-CSRF': session.csrf || '' });

  async function viaPolling() {
    while (!stopped) {
      const r = await api('GET', `${url}?after=${last}`, undefined, { signal: ctrl.signal });
      for (const c of r.chunks || []) append(c);
      if (r.done) { done(); return; }
      await new Promise((res) => { timer = setTimeout(res, POLL_MS); });
    }
  }

  async function viaStream() {
    const resp = await fetch(`${url}?after=${last}`, { headers: { ...headers(), Accept: 'text/event-stream' }, credentials: 'same-origin', cache: 'no-store', signal: ctrl.signal });
    const type = resp.headers.get('Content-Type') || '';
    if (!resp.ok || !type.startsWith('text/event-stream') || !resp.body) return false; // read by polling, which reports an error
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return false; // the stream was cut: go on by polling from the last chunk
      buf += value;
      let i;
      while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
        let event = 'message';
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (event === 'chunk' && data.length) append(JSON.parse(data.join('\n')));
        if (event === 'done') return last > 0 ? (done(), true) : false; // none seen: confirm by reading
      }
    }
  }

  (async () => {
    try {
      if (!(await viaStream())) await viaPolling();
    } catch (e) {
      if (!stopped && e.name !== 'AbortError') note.textContent = e.status === 404 ? 'No output for this node.' : `Output unavailable: ${e.message}`;
    }
  })();
  return { stop() { stopped = true; clearTimeout(timer); ctrl.abort(); } };
}

// ---- targets and common options (task and Puppet forms) ----

function field(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field', 'data-field': id },
    h('label', { for: id }, label), input, hint ? h('span', { class: 'hint', id: hintId }, hint) : null);
}

function targetFieldset(groups) {
  const radio = (value, label, checked) => h('span', { class: 'field inline' },
    h('input', { type: 'radio', name: 'target', id: `target-${value}`, value, checked }), h('label', { for: `target-${value}` }, label));
  return h('fieldset', { id: 'target' }, h('legend', {}, 'Target'),
    h('div', { class: 'row', role: 'radiogroup', 'aria-label': 'Target by' },
      radio('nodes', 'Nodes', true), radio('query', 'Query', false), radio('group', 'Node group', false)),
    field('scope-nodes', 'Nodes', h('textarea', { id: 'scope-nodes', name: 'scope-nodes', rows: 2 }), 'Node names, separated by commas, spaces or new lines.'),
    field('scope-query', 'Query', h('input', { id: 'scope-query', name: 'scope-query', size: 50 }), 'A PQL query, e.g. inventory[certname] { facts.os.family = "Debian" }'),
    field('scope-group', 'Node group', h('select', { id: 'scope-group', name: 'scope-group' }, h('option', { value: '' }, '—'),
      groups.map((g) => h('option', { value: g.name }, g.name)))));
}

function optionsFieldset(withEnvironment) {
  return h('fieldset', {}, h('legend', {}, 'Options'),
    h('div', { class: 'row' },
      withEnvironment ? field('environment', 'Environment', h('input', { id: 'environment', name: 'environment', value: 'production', size: 14 })) : null,
      field('concurrency', 'Concurrency', h('input', { id: 'concurrency', name: 'concurrency', type: 'number', min: 1, size: 6 }), 'Nodes at once'),
      field('timeout', 'Timeout (s)', h('input', { id: 'timeout', name: 'timeout', type: 'number', min: 1, size: 6 }), 'Per node'),
      field('max_errors', 'Max errors', h('input', { id: 'max_errors', name: 'max_errors', size: 6 }), 'A count or a percentage (10%)')),
    field('description', 'Description', h('input', { id: 'description', name: 'description', size: 50 })));
}

function readCommon(form, body) {
  const el = form.elements;
  const target = form.querySelector('input[name="target"]:checked').value;
  if (target === 'nodes') body.scope = { nodes: el['scope-nodes'].value.split(/[\s,]+/).filter(Boolean) };
  if (target === 'query') body.scope = { query: el['scope-query'].value.trim() };
  if (target === 'group') body.scope = { node_group: el['scope-group'].value };
  for (const k of ['concurrency', 'timeout']) if (el[k].value !== '') body[k] = Number(el[k].value);
  const me = el.max_errors.value.trim();
  if (me !== '') body.max_errors = /^\d+$/.test(me) ? Number(me) : me;
  if (el.description.value.trim()) body.description = el.description.value.trim();
  return body;
}

function clearErrors(form) {
  for (const e of form.querySelectorAll('.error')) e.remove();
  for (const e of form.querySelectorAll('[aria-invalid]')) {
    e.removeAttribute('aria-invalid');
    const d = (e.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && !x.endsWith('-error')).join(' ');
    if (d) e.setAttribute('aria-describedby', d); else e.removeAttribute('aria-describedby');
  }
}

// fieldError shows msg at the input with id; false when there is no such field.
function fieldError(form, id, msg) {
  const input = form.querySelector(`#${CSS.escape(id)}`);
  if (!input) return false;
  const errId = `${id}-error`;
  const wrap = input.closest('.field') || input.parentElement;
  wrap.append(h('span', { class: 'error', id: errId }, msg));
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', `${input.getAttribute('aria-describedby') || ''} ${errId}`.trim());
  return true;
}

// showErrors puts the API's validation errors at their fields: details.problems ({param, msg})
// for task parameters, details.field for the request's own keys; the rest above the form.
function showErrors(form, top, e, paramId) {
  clearErrors(form);
  put(top);
  let placed = 0;
  for (const p of (e.details && e.details.problems) || []) {
    if (p.param && fieldError(form, paramId(p.param), p.msg || e.message)) placed += 1;
  }
  const f = e.details && e.details.field;
  if (f && fieldError(form, f.replace(/^scope\./, 'scope-'), e.message)) placed += 1;
  const keyed = !placed && e.message.match(/^(concurrency|timeout|max_errors)\b/);
  if (keyed && fieldError(form, keyed[1], e.message)) placed += 1;
  top.append(alertBox(placed ? `${e.message} — see the marked fields.` : e.message));
  const first = form.querySelector('[aria-invalid="true"]');
  (first || top).focus();
  if (!first) top.setAttribute('tabindex', '-1');
}

async function loadGroups() {
  try { return (await api('GET', '/baton/v1/groups')).items; } catch (e) { return []; }
}

// ---- run a task ----

// paramInput builds the input for a Puppet data type (the API validates the value).
function paramInput(id, type, def) {
  let t = (type || 'Any').replace(/\s+/g, '');
  let optional = false;
  let sensitive = false;
  for (;;) {
    const m = t.match(/^(Optional|Sensitive)\[(.*)\]$/);
    if (!m) break;
    if (m[1] === 'Optional') optional = true; else sensitive = true;
    t = m[2];
  }
  if (t === 'Optional') { optional = true; t = 'Any'; }
  const kind = t.replace(/\[.*$/, '');
  const placeholder = def === undefined ? undefined : `default: ${JSON.stringify(def)}`;
  let input;
  let read;
  if (kind === 'Boolean') {
    input = h('select', { id, name: id }, h('option', { value: '' }, optional || def !== undefined ? '(not set)' : '— choose —'),
      h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
    read = () => (input.value === '' ? undefined : input.value === 'true');
  } else if (kind === 'Enum') {
    const values = [...t.matchAll(/'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? m[2]);
    input = h('select', { id, name: id }, h('option', { value: '' }, '(not set)'), values.map((v) => h('option', { value: v }, v)));
    read = () => (input.value === '' ? undefined : input.value);
  } else if (kind === 'Integer' || kind === 'Float' || kind === 'Numeric') {
    input = h('input', { id, name: id, inputmode: kind === 'Integer' ? 'numeric' : 'decimal', placeholder });
    read = () => {
      const v = input.value.trim();
      if (v === '') return undefined;
      const n = Number(v);
      return Number.isNaN(n) ? v : n; // a non-number goes as typed: the API says what is wrong
    };
  } else if (kind === 'String' || kind === 'Pattern') {
    input = h('input', { id, name: id, placeholder, type: sensitive ? 'password' : 'text', autocomplete: 'off' });
    read = () => (input.value === '' ? undefined : input.value);
  } else {
    input = h('textarea', { id, name: id, rows: 2, placeholder: placeholder || 'JSON' });
    read = () => {
      const v = input.value.trim();
      if (v === '') return undefined;
      try { return JSON.parse(v); } catch (e) { return v; }
    };
  }
  return { input, read, optional };
}

async function runTaskPage(main, name) {
  main.append(h('h1', {}, name ? `Run task ${name}` : 'Run a task'));
  if (!canRunAnyTask()) {
    main.append(h('p', {}, 'You may not run any task. Ask an administrator for a role with the tasks:run permission.'));
    return;
  }
  const list = await api('GET', `${API}/tasks`);
  const runnable = list.items.filter((t) => canRunTask(t.name));
  const chooser = h('select', { id: 'task-select', onchange: () => { location.hash = chooser.value ? `#/run/task/${encodeURIComponent(chooser.value)}` : '#/run/task'; } },
    h('option', { value: '' }, '— choose a task —'), runnable.map((t) => h('option', { value: t.name, selected: t.name === name }, t.name)));
  main.append(field('task-select', 'Task', chooser, runnable.length ? `${runnable.length} tasks you may run in ${list.environment.name}` : 'There is no task you may run here.'));
  if (!name) return;
  if (!canRunTask(name)) { main.append(alertBox(`You may not run task ${name}.`)); return; }
  const [task, groups] = await Promise.all([api('GET', taskPath(name)), loadGroups()]);
  const meta = task.metadata || {};
  const params = meta.parameters || {};
  const readers = {};
  const paramId = (p) => `param-${p}`;
  const paramFields = Object.entries(params).map(([p, spec]) => {
    const { input, read, optional } = paramInput(paramId(p), spec.type, spec.default);
    readers[p] = read;
    const hint = [spec.description, spec.type ? `Type ${spec.type}` : null, optional || spec.default !== undefined ? 'optional' : 'required'].filter(Boolean).join(' · ');
    return field(paramId(p), p, input, hint);
  });
  const top = h('div', { id: 'form-errors' });
  const form = h('form', { id: 'task-form', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { task: name, params: {} };
    for (const [p, read] of Object.entries(readers)) { const v = read(); if (v !== undefined) body.params[p] = v; }
    readCommon(form, body);
    body.environment = form.elements.environment.value.trim() || 'production';
    if (form.elements.noop && form.elements.noop.checked) body.noop = true;
    if (form.elements.stream.checked) body.stream = true;
    const button = $('button[type="submit"]', form);
    button.disabled = true;
    try {
      const r = await api('POST', `${API}/command/task`, body);
      location.hash = `#/jobs/${r.job.name}`;
    } catch (e) {
      if (e.status !== 401) showErrors(form, top, e, paramId);
    } finally {
      button.disabled = false;
    }
  } },
  meta.description ? h('p', {}, meta.description) : null,
  h('fieldset', {}, h('legend', {}, 'Parameters'), paramFields.length ? paramFields : h('p', { class: 'note' }, 'This task takes no parameters.')),
  targetFieldset(groups),
  optionsFieldset(true),
  meta.supports_noop ? h('div', { class: 'field inline' }, h('input', { type: 'checkbox', id: 'noop', name: 'noop' }), h('label', { for: 'noop' }, 'No-op (the task reports what it would do)')) : null,
  h('div', { class: 'field inline' }, h('input', { type: 'checkbox', id: 'stream', name: 'stream', 'aria-describedby': 'stream-hint' }),
    h('label', { for: 'stream' }, 'Stream the output live'),
    h('span', { class: 'hint', id: 'stream-hint' }, '(baton serve streams every task; on AWS it is opt-in and adds a little to each node-run\'s cost)')),
  h('button', { type: 'submit', id: 'run-task' }, 'Run'));
  main.append(top, form);
}

// ---- run Puppet ----

async function runPuppetPage(main) {
  main.append(h('h1', {}, 'Run Puppet'));
  if (!can('puppet:run')) { main.append(h('p', {}, 'You may not run Puppet. Ask an administrator for the puppet:run permission.')); return; }
  const groups = await loadGroups();
  const check = (id, label) => h('div', { class: 'field inline' }, h('input', { type: 'checkbox', id, name: id }), h('label', { for: id }, label));
  const top = h('div', { id: 'form-errors' });
  const form = h('form', { id: 'puppet-form', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const el = form.elements;
    const body = readCommon(form, { environment: el.environment.value.trim() });
    for (const k of ['noop', 'no_noop', 'enforce_environment', 'debug', 'trace', 'evaltrace', 'use_cached_catalog', 'usecacheonfailure']) if (el[k].checked) body[k] = true;
    for (const k of ['tags', 'skip_tags', 'ordering']) if (el[k].value.trim()) body[k] = el[k].value.trim();
    for (const k of ['filetimeout', 'http_connect_timeout', 'http_keepalive_timeout', 'http_read_timeout']) if (el[k].value !== '') body[k] = Number(el[k].value);
    try {
      const r = await api('POST', `${API}/command/deploy`, body);
      location.hash = `#/jobs/${r.job.name}`;
    } catch (e) {
      if (e.status !== 401) showErrors(form, top, e, (p) => p);
    }
  } },
  targetFieldset(groups),
  h('fieldset', {}, h('legend', {}, 'Puppet'),
    field('environment', 'Environment', h('input', { id: 'environment', name: 'environment', value: 'production' }), 'Empty: each agent uses its own environment.'),
    h('div', { class: 'row' }, check('noop', 'No-op'), check('no_noop', 'No no-op (override noop = true)'), check('enforce_environment', 'Enforce environment')),
    h('div', { class: 'row' }, check('debug', 'Debug'), check('trace', 'Trace'), check('evaltrace', 'Evaltrace'), check('use_cached_catalog', 'Use cached catalog'), check('usecacheonfailure', 'Use cache on failure')),
    h('div', { class: 'row' },
      field('tags', 'Tags', h('input', { id: 'tags', name: 'tags' }), 'Comma-separated'),
      field('skip_tags', 'Skip tags', h('input', { id: 'skip_tags', name: 'skip_tags' })),
      field('ordering', 'Ordering', h('select', { id: 'ordering', name: 'ordering' }, ['', 'manifest', 'title-hash', 'random'].map((o) => h('option', { value: o }, o || '(default)'))))),
    h('div', { class: 'row' },
      ['filetimeout', 'http_connect_timeout', 'http_keepalive_timeout', 'http_read_timeout'].map((k) => field(k, k.replace(/_/g, ' '), h('input', { id: k, name: k, type: 'number', min: 0, size: 6 }))))),
  optionsFieldset(false),
  h('button', { type: 'submit', id: 'run-puppet' }, 'Run Puppet'));
  main.append(top, form);
}

// ---- inventory ----

async function inventoryPage(main) {
  const r = await api('GET', `${API}/inventory`);
  const all = r.items.slice().sort((a, b) => a.name.localeCompare(b.name));
  const state = { q: '', conn: '', page: 1 };
  const box = h('div');
  const search = h('input', { id: 'inventory-search', type: 'search', oninput: () => { state.q = search.value.trim().toLowerCase(); state.page = 1; render(); } });
  const conn = h('select', { id: 'inventory-conn', onchange: () => { state.conn = conn.value; state.page = 1; render(); } },
    h('option', { value: '' }, 'Any'), h('option', { value: 'connected' }, 'Connected'), h('option', { value: 'disconnected' }, 'Disconnected'));
  main.append(h('h1', {}, 'Inventory'),
    h('div', { class: 'row' }, field('inventory-search', 'Search nodes', search), field('inventory-conn', 'Connection', conn)),
    h('p', { class: 'note' }, `${all.filter((n) => n.connected).length} of ${all.length} nodes connected. Open a node for its facts.`), box);
  function render() {
    const list = all.filter((n) => (!state.q || n.name.toLowerCase().includes(state.q)) &&
      (!state.conn || (state.conn === 'connected') === !!n.connected));
    const pages = Math.max(1, Math.ceil(list.length / NODE_PAGE));
    state.page = Math.min(state.page, pages);
    put(box, h('table', { id: 'inventory-table' },
      h('caption', {}, `${list.length} nodes; page ${state.page} of ${pages}`),
      h('thead', {}, h('tr', {}, ['Node', 'Connection', 'Broker', 'Connected since'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.slice((state.page - 1) * NODE_PAGE, state.page * NODE_PAGE).map((n) => h('tr', {},
        h('td', {}, h('a', { href: `#/inventory/${encodeURIComponent(n.name)}` }, n.name)),
        h('td', {}, stateBadge(n.connected ? 'connected' : 'disconnected')),
        h('td', {}, n.broker || ''), h('td', {}, fmtTime(n.timestamp)))))),
    pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Pages of nodes' },
      h('button', { type: 'button', class: 'secondary', disabled: state.page <= 1, onclick: () => { state.page -= 1; render(); } }, 'Previous'),
      h('button', { type: 'button', class: 'secondary', disabled: state.page >= pages, onclick: () => { state.page += 1; render(); } }, 'Next')) : null);
  }
  render();
}

function flattenFacts(prefix, v, out) {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flattenFacts(prefix ? `${prefix}.${k}` : k, x, out);
  } else {
    out.push([prefix, typeof v === 'string' ? v : JSON.stringify(v)]);
  }
  return out;
}

async function nodePage(main, name) {
  const n = await api('GET', `${API}/inventory/${encodeURIComponent(name)}`);
  const facts = flattenFacts('', n.facts || {}, []).sort((a, b) => a[0].localeCompare(b[0]));
  const box = h('div');
  const search = h('input', { id: 'fact-search', type: 'search', oninput: () => render(search.value.trim().toLowerCase()) });
  main.append(h('h1', {}, `Node ${name}`),
    h('dl', { class: 'summary' }, h('dt', {}, 'Connection'), h('dd', {}, stateBadge(n.connected ? 'connected' : 'disconnected')),
      h('dt', {}, 'Broker'), h('dd', {}, n.broker || '—'), h('dt', {}, 'Connected since'), h('dd', {}, fmtTime(n.timestamp) || '—')),
    h('h2', {}, 'Facts'), field('fact-search', 'Search facts (name or value)', search), box);
  function render(q) {
    const list = facts.filter(([k, v]) => !q || k.toLowerCase().includes(q) || v.toLowerCase().includes(q));
    put(box, list.length ? h('table', { id: 'facts-table' }, h('caption', {}, `${list.length} of ${facts.length} facts`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Fact'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, list.slice(0, 500).map(([k, v]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, v)))))
      : h('p', {}, facts.length ? 'No fact matches.' : 'No facts reported yet.'));
  }
  render('');
}

// ---- node groups ----

async function groupsPage(main) {
  const r = await api('GET', '/baton/v1/groups');
  const manage = can('nodes:manage');
  const top = h('div');
  main.append(h('h1', {}, 'Node groups'), top);
  main.append(r.items.length ? h('table', { id: 'groups-table' },
    h('thead', {}, h('tr', {}, ['Group', 'Description', 'Members', manage ? 'Actions' : null].filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, r.items.map((g) => h('tr', {},
      h('td', {}, g.name), h('td', {}, g.description || ''),
      h('td', {}, g.query ? h('code', {}, g.query) : (g.nodes || []).join(', ')),
      manage ? h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete group ${g.name}`, onclick: async () => {
        if (!window.confirm(`Delete node group ${g.name}?`)) return;
        try { await api('DELETE', `/baton/v1/groups/${encodeURIComponent(g.name)}`); route(); } catch (e) { put(top, alertBox(e.message)); }
      } }, 'Delete')) : null))))
    : h('p', {}, 'No node groups yet.'));
  if (!manage) return;
  const errs = h('div');
  const form = h('form', { id: 'group-form', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const el = form.elements;
    const body = { name: el['group-name'].value.trim(), description: el['group-description'].value.trim() };
    const nodes = el['group-nodes'].value.split(/[\s,]+/).filter(Boolean);
    if (nodes.length) body.nodes = nodes;
    if (el['group-query'].value.trim()) body.query = el['group-query'].value.trim();
    try { await api('POST', '/baton/v1/groups', body); route(); } catch (e) { if (e.status !== 401) showErrors(form, errs, e, (p) => `group-${p}`); }
  } },
  h('h2', {}, 'New group'), errs,
  field('group-name', 'Name', h('input', { id: 'group-name', name: 'group-name', required: true })),
  field('group-description', 'Description', h('input', { id: 'group-description', name: 'group-description' })),
  field('group-nodes', 'Nodes', h('textarea', { id: 'group-nodes', name: 'group-nodes', rows: 2 }), 'Node names; or a query below'),
  field('group-query', 'Query', h('input', { id: 'group-query', name: 'group-query', size: 50 })),
  h('button', { type: 'submit' }, 'Create group'));
  main.append(form);
}

// ---- start ----

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  $('#sign-out').addEventListener('click', signOut);
  route();
});
