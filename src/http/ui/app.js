// jes web console: plain ES module, no framework, no build step.
//
// Everything that comes from mail or from the server is put into the page with textContent or
// attribute setters (never innerHTML), and HTML parts of messages are only shown inside an
// <iframe sandbox> without allow-scripts or allow-same-origin.

const POLL_MS = 5000;
const CHART_MINUTES = 60;

const state = {
  user: null,
  csrf: null,
  // Bumped on every route change: a poll or fetch started for an older view drops its result.
  view: 0,
  timers: [],
  cleanups: [],
  afterLogin: null,
  lastTotals: null,
};

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Creates an element. `attrs` keys: class, text, on* (listeners), dataset, aria/others as
 *  attributes; children are nodes or strings (strings become text nodes). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const $ = (sel, root = document) => root.querySelector(sel);

function main() {
  return document.getElementById('main');
}

/** Replaces the main area with `nodes`, keeping keyboard focus on the element with the same
 *  data-key when there was one (so a periodic refresh does not throw the user's focus away). */
function render(container, ...nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : null;
  container.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

/** Whether a poll brought anything new for `box`: unchanged data is not rendered again (so a
 *  screen reader's place and the keyboard focus stay put), except every 30 s for relative times. */
function changed(box, data) {
  const json = JSON.stringify(data);
  const now = Date.now();
  if (box.jesJson === json && now - (box.jesRenderedAt || 0) < 30000) return false;
  box.jesJson = json;
  box.jesRenderedAt = now;
  return true;
}

/** Renders `nodes` into `box` and forgets what `changed` saw, so the next poll renders again. */
function renderFresh(box, ...nodes) {
  box.jesJson = null;
  render(box, ...nodes);
}

// ---------------------------------------------------------------------------------------------
// Formatting

const numberFmt = new Intl.NumberFormat();
const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
const timeFmt = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
const hmFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });

function num(n) {
  return typeof n === 'number' && Number.isFinite(n) ? numberFmt.format(n) : '—';
}

/** A Date from epoch seconds, epoch milliseconds, or a date string; null when unusable. */
function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return new Date(v > 1e12 ? v : v * 1000);
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return toDate(Number(v));
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

function absTime(v) {
  const d = toDate(v);
  return d ? dateTimeFmt.format(d) : '—';
}

function relTime(v) {
  const d = toDate(v);
  if (!d) return '—';
  const secs = Math.round((d.getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  if (abs < 45) return relFmt.format(secs, 'second');
  if (abs < 45 * 60) return relFmt.format(Math.round(secs / 60), 'minute');
  if (abs < 36 * 3600) return relFmt.format(Math.round(secs / 3600), 'hour');
  return relFmt.format(Math.round(secs / 86400), 'day');
}

/** A <time> element showing a relative time with the absolute one as its tooltip. */
function timeEl(v, { relative = true } = {}) {
  const d = toDate(v);
  if (!d) return h('span', { class: 'muted', text: '—' });
  return h('time', {
    datetime: d.toISOString(),
    title: dateTimeFmt.format(d),
    text: relative ? relTime(v) : dateTimeFmt.format(d),
  });
}

function duration(secs) {
  if (typeof secs !== 'number' || !Number.isFinite(secs)) return '—';
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400);
  const hr = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  if (d > 0) return `${d} d ${hr} h`;
  if (hr > 0) return `${hr} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${secs} s`;
}

function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function plural(n, one, many) {
  return `${num(n)} ${n === 1 ? one : many}`;
}

/** Path segment encoding that keeps '@', ',' and '=' readable (all legal in a path segment). */
function seg(v) {
  return encodeURIComponent(String(v))
    .replace(/%40/g, '@')
    .replace(/%2C/gi, ',')
    .replace(/%3D/gi, '=');
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'The server cannot be reached. Is jes running?');
  }
  if (res.status === 401 && path !== '/api/login' && path !== '/api/session') {
    sessionExpired();
    throw new ApiError(401, 'Your session has ended. Please log in again.');
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('json')) {
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
  } else if (!res.ok) {
    data = { error: (await res.text()).slice(0, 300) };
  }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' && data.error ? data.error : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

async function apiText(path) {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 401) {
    sessionExpired();
    throw new ApiError(401, 'Your session has ended. Please log in again.');
  }
  if (!res.ok) throw new ApiError(res.status, `${res.status} ${res.statusText}`);
  return res.text();
}

const mailboxPath = (addr) => `/api/mailboxes/${seg(addr)}`;
const messagePath = (addr, id) => `${mailboxPath(addr)}/messages/${seg(id)}`;

// ---------------------------------------------------------------------------------------------
// Messages to the user

let statusTimer = null;
let alertTimer = null;

function notify(text) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.classList.add('show');
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => el.classList.remove('show'), 5000);
}

function showError(err) {
  const el = document.getElementById('alert');
  el.replaceChildren(
    h('span', { text: err instanceof Error ? err.message : String(err) }),
    h('button', {
      type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×',
      onclick: () => el.classList.remove('show'),
    }),
  );
  el.classList.add('show');
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => el.classList.remove('show'), 10000);
}

function clearError() {
  document.getElementById('alert').classList.remove('show');
}

/** Says `text` to screen readers only. */
function announce(text) {
  const el = document.getElementById('announcer');
  el.textContent = '';
  setTimeout(() => {
    el.textContent = text;
  }, 50);
}

/** A modal confirmation. `body` is a node or text; `choices` optional radio options
 *  [{value, label, hint}] whose chosen value is returned. Resolves to null when cancelled. */
function confirmDialog({ title, body, ok, choices }) {
  const dialog = document.getElementById('confirm-dialog');
  $('#confirm-title').textContent = title;
  const bodyEl = $('#confirm-body');
  const parts = [typeof body === 'string' ? h('p', { text: body }) : body];
  if (choices) {
    parts.push(h('fieldset', { class: 'choices' },
      h('legend', { text: 'Choose' }),
      choices.map((c, i) => h('label', { class: 'choice' },
        h('input', { type: 'radio', name: 'confirm-choice', value: c.value, checked: i === 0 }),
        h('span', {}, h('strong', { text: c.label }), c.hint ? h('span', { class: 'hint', text: c.hint }) : null),
      )),
    ));
  }
  bodyEl.replaceChildren(...parts);
  $('#confirm-ok').textContent = ok;
  const opener = document.activeElement;
  const openerKey = opener && opener.dataset ? opener.dataset.key : null;
  // Back to the button that opened the dialog, or to its fresh copy when a refresh replaced it.
  const refocus = () => {
    const again = document.contains(opener) ? opener
      : openerKey && document.querySelector(`[data-key="${CSS.escape(openerKey)}"]`);
    if (again) again.focus();
  };
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      refocus();
      if (dialog.returnValue !== 'ok') return resolve(null);
      const picked = choices ? $('input[name="confirm-choice"]:checked', dialog) : null;
      return resolve(picked ? picked.value : 'ok');
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', done);
    dialog.showModal();
    (choices ? $('input[name="confirm-choice"]', dialog) : $('#confirm-cancel')).focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Session

function setSession(data) {
  state.user = data.user;
  state.csrf = data.csrf;
  document.getElementById('account-user').textContent = data.user;
  const node = document.getElementById('brand-node');
  node.textContent = data.node || '';
  node.hidden = !data.node;
  state.node = data.node || '';
  document.getElementById('account').hidden = false;
  document.getElementById('mainnav').hidden = false;
  setCaptureBanner(data.capture);
}

/** The banner every page shows while capture mode holds outgoing mail. */
function setCaptureBanner(on) {
  document.getElementById('capture-banner').hidden = !on;
}

/** Capture mode follows configuration reloads: each page asks again. */
function refreshCaptureBanner() {
  api('GET', '/api/session').then((d) => setCaptureBanner(d.capture)).catch(() => {});
}

function clearSession() {
  state.user = null;
  state.csrf = null;
  state.lastTotals = null;
  document.getElementById('account').hidden = true;
  document.getElementById('mainnav').hidden = true;
  setCaptureBanner(false);
}

function sessionExpired() {
  if (!state.user) return;
  clearSession();
  state.afterLogin = location.hash;
  showLogin('Your session has ended. Please log in again.');
}

async function logout() {
  try {
    await api('POST', '/api/logout');
  } catch (e) {
    // Logged out either way from the page's point of view.
  }
  clearSession();
  state.afterLogin = null;
  history.replaceState(null, '', '#/');
  showLogin();
  notify('You are logged out.');
}

function showLogin(message) {
  leaveView();
  document.title = 'Log in · jes console';
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' });
  if (message) error.textContent = message;
  const user = h('input', {
    id: 'login-user', name: 'user', type: 'email', autocomplete: 'username', required: true,
    spellcheck: 'false', autocapitalize: 'none',
  });
  const password = h('input', {
    id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-block', id: 'login-submit', text: 'Log in' });
  const form = h('form', { class: 'login-form', id: 'login-form', 'aria-describedby': 'login-error', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'login-user', text: 'Account' }), user,
      h('p', { class: 'hint', id: 'login-user-hint', text: 'An address listed in http.admins, e.g. admin@example.org' })),
    h('div', { class: 'field' }, h('label', { for: 'login-password', text: 'Password' }), password),
    error,
    button,
  );
  user.setAttribute('aria-describedby', 'login-user-hint');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (!user.value.trim() || !password.value) {
      error.textContent = 'Enter the account and its password.';
      (user.value.trim() ? password : user).focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Logging in…';
    try {
      const data = await api('POST', '/api/login', { user: user.value.trim(), password: password.value });
      setSession(data);
      const target = state.afterLogin && state.afterLogin.startsWith('#/') ? state.afterLogin : '#/';
      state.afterLogin = null;
      if (location.hash === target) route();
      else location.hash = target;
    } catch (e) {
      error.textContent = e.status === 401 || e.status === 403
        ? 'Wrong account or password, or the account is not an administrator.'
        : e.message;
      button.disabled = false;
      button.textContent = 'Log in';
      password.select();
      password.focus();
    }
  });
  render(main(), h('section', { class: 'login', 'aria-labelledby': 'login-title' },
    h('div', { class: 'card login-card' },
      h('h1', { id: 'login-title', tabindex: '-1', text: 'Log in to jes' }),
      h('p', { class: 'muted', text: 'Mail server console: queue, mailboxes and delivery statistics.' }),
      form,
    )));
  setActiveNav(null);
  user.focus();
}

// ---------------------------------------------------------------------------------------------
// Routing: #/, #/queue, #/queue/ID, #/mailboxes, #/mailboxes/ADDR, #/mailboxes/ADDR/ID,
// #/history?q=SEARCH, #/history/ID

function parseRoute() {
  const hash = (location.hash || '#/').split('?')[0];
  if (!hash.startsWith('#/')) return null;
  const parts = hash.slice(2).split('/').filter((p) => p !== '').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (e) {
      return p;
    }
  });
  return parts;
}

/** The route's query (`#/history?q=...`). */
function routeParams() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

function leaveView() {
  state.view += 1;
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  for (const c of state.cleanups) c();
  state.cleanups = [];
}

/** Runs `fn` now and every POLL_MS while the current view is shown. */
function poll(fn) {
  const view = state.view;
  const tick = () => {
    if (view === state.view && !document.hidden) fn();
  };
  state.timers.push(setInterval(tick, POLL_MS));
}

function current(view) {
  return view === state.view;
}

function setActiveNav(name) {
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

let firstRoute = true;

function route() {
  const parts = parseRoute();
  if (parts === null) return; // an in-page anchor, not a route
  if (!state.user) {
    state.afterLogin = location.hash;
    showLogin();
    return;
  }
  leaveView();
  clearError();
  refreshCaptureBanner();
  const view = state.view;
  const [top, a, b, c] = parts;
  let shown;
  if (!top) shown = showDashboard(view);
  else if (top === 'queue' && !a) shown = showQueue(view);
  else if (top === 'queue') shown = showQueued(view, a);
  else if (top === 'mailboxes' && !a) shown = showMailboxes(view);
  else if (top === 'mailboxes' && !b) shown = showMailbox(view, a);
  else if (top === 'mailboxes' && !c) shown = showMessage(view, a, b);
  else if (top === 'captured' && !a) shown = showCaptured(view);
  else if (top === 'captured' && !b) shown = showCapturedMessage(view, a);
  else if (top === 'history' && !a) shown = showHistory(view, routeParams().get('q') || '');
  else if (top === 'history' && !b) shown = showHistoryMessage(view, a);
  else shown = showNotFound();
  Promise.resolve(shown).then(() => {
    if (!current(view)) return;
    // Move focus to the new page's heading so keyboard and screen reader users land there.
    if (!firstRoute) {
      const h1 = main().querySelector('h1');
      if (h1) h1.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
    firstRoute = false;
  });
}

function pageHeader(title, { crumbs, actions, sub } = {}) {
  document.title = `${title} · jes console${state.node ? ` · ${state.node}` : ''}`;
  return h('div', { class: 'page-header' },
    crumbs ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('ol', {}, crumbs.map((c, i) => h('li', {},
        i === crumbs.length - 1 && !c.href
          ? h('span', { 'aria-current': 'page', text: c.label })
          : h('a', { href: c.href, text: c.label }))))) : null,
    h('div', { class: 'page-title-row' },
      h('div', { class: 'page-title' },
        h('h1', { tabindex: '-1', text: title }),
        sub ? h('p', { class: 'page-sub' }, sub) : null),
      actions ? h('div', { class: 'page-actions' }, actions) : null),
  );
}

function loadingBlock(what) {
  return h('p', { class: 'loading', text: `Loading ${what}…` });
}

function errorBlock(err, retry) {
  return h('div', { class: 'notice notice-error', role: 'alert' },
    h('p', { text: err.message }),
    retry ? h('button', { type: 'button', class: 'btn', text: 'Try again', onclick: retry }) : null);
}

function showNotFound() {
  setActiveNav(null);
  render(main(), pageHeader('Page not found'),
    h('p', {}, 'There is no such page. ', h('a', { href: '#/', text: 'Go to the dashboard' }), '.'));
}

// ---------------------------------------------------------------------------------------------
// Dashboard

const SERIES = [
  { key: 'accepted', label: 'Accepted' },
  { key: 'delivered', label: 'Delivered' },
  { key: 'bounced', label: 'Bounced' },
];

function showDashboard(view) {
  setActiveNav('dashboard');
  const counters = {};
  const counter = (key, label, cls) => {
    const value = h('span', { class: 'stat-value', id: `stat-${key}`, text: '—' });
    const note = h('span', { class: 'stat-note' });
    counters[key] = { value, note };
    return h('div', { class: `stat ${cls || ''}` }, h('span', { class: 'stat-label', text: label }), value, note);
  };
  const updated = h('span', { class: 'muted small', id: 'stats-updated' });
  const chartBox = h('div', { class: 'chart', id: 'chart' });
  const chartTable = h('div', { class: 'chart-table' });
  const eventsBox = h('div', { id: 'events' }, loadingBlock('recent deliveries'));
  const serversTitle = h('h2', { id: 'servers-title', text: 'Servers on the shared database' });
  const serversBox = h('div', { id: 'servers' });
  const serversCard = h('section', { class: 'card', 'aria-labelledby': 'servers-title', hidden: true },
    h('div', { class: 'card-head' }, serversTitle), serversBox);
  const totalsTitle = h('h2', { class: 'group-title', text: 'Messages since start' });

  render(main(),
    pageHeader('Dashboard', { sub: updated }),
    h('section', { class: 'stats', 'aria-label': 'Counters' },
      h('div', { class: 'stat-group' },
        totalsTitle,
        h('div', { class: 'stat-grid' },
          counter('accepted', 'Accepted', 's-accepted'),
          counter('delivered', 'Delivered', 's-delivered'),
          counter('bounced', 'Bounced', 's-bounced'),
          counter('deferred', 'Deferred', 's-deferred'))),
      h('div', { class: 'stat-group' },
        h('h2', { class: 'group-title', text: 'Now' }),
        h('div', { class: 'stat-grid' },
          counter('queue', 'In queue'),
          counter('oldest', 'Oldest queued'),
          counter('sessions', 'Open sessions'),
          counter('uptime', 'Up for')))),
    serversCard,
    h('section', { class: 'card', 'aria-labelledby': 'chart-title' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'chart-title', text: 'Messages per minute, last hour' }),
        h('ul', { class: 'legend', 'aria-label': 'Legend' },
          SERIES.map((sr) => h('li', { class: `legend-item s-${sr.key}` },
            h('span', { class: 'swatch', 'aria-hidden': 'true' }), sr.label)))),
      chartBox,
      chartTable),
    h('section', { class: 'card', 'aria-labelledby': 'events-title' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'events-title', text: 'Recent deliveries and bounces' }),
        h('a', { href: '#/queue', class: 'card-link', text: 'Open the queue' })),
      eventsBox),
  );

  let lastStats = null;
  const redraw = () => {
    if (lastStats) drawChart(chartBox, lastStats.minutes || []);
  };
  const ro = new ResizeObserver(() => redraw());
  ro.observe(chartBox);
  state.cleanups.push(() => ro.disconnect());

  const load = async () => {
    try {
      const [stats, events, cluster] = await Promise.all([
        api('GET', '/api/stats'), api('GET', '/api/events'),
        api('GET', '/api/cluster').catch((e) => ({ error: e }))]);
      if (!current(view)) return;
      if (cluster.shared || cluster.error) {
        serversCard.hidden = false;
        totalsTitle.textContent = `Messages since start, this server (${stats.node})`;
        if (cluster.error) {
          if (cluster.error.status === 401) throw cluster.error;
          render(serversBox, h('p', { class: 'empty', text: `Cannot read the servers: ${cluster.error.message}` }));
        } else {
          serversTitle.textContent = `Servers on the shared database: ${num(cluster.up)} of ${num(cluster.servers.length)} up`;
          renderServers(serversBox, cluster);
        }
      }
      lastStats = stats;
      const t = stats.totals || {};
      for (const k of ['accepted', 'delivered', 'bounced', 'deferred']) counters[k].value.textContent = num(t[k]);
      const q = stats.queue || {};
      counters.queue.value.textContent = num(q.depth);
      counters.queue.note.textContent = (q.depth === 1 ? 'message' : 'messages') + (cluster.shared ? ', all servers' : '');
      counters.oldest.value.textContent = q.depth ? duration(q.oldest_age_secs) : '—';
      counters.oldest.note.textContent = q.depth ? 'waiting' : 'queue is empty';
      const ss = stats.sessions || {};
      counters.sessions.value.textContent = num((ss.smtp || 0) + (ss.pop3 || 0));
      counters.sessions.note.textContent = `SMTP ${num(ss.smtp || 0)} · POP3 ${num(ss.pop3 || 0)}`;
      counters.uptime.value.textContent = duration(stats.uptime_secs);
      updated.textContent = `Updated ${timeFmt.format(new Date())}, refreshes every ${POLL_MS / 1000} s`;
      announceTotals(t);
      drawChart(chartBox, stats.minutes || []);
      renderChartTable(chartTable, stats.minutes || []);
      renderEvents(eventsBox, Array.isArray(events) ? events : []);
    } catch (e) {
      if (!current(view) || e.status === 401) return;
      updated.textContent = `Not updated: ${e.message}`;
      if (!lastStats) renderFresh(eventsBox, errorBlock(e, load));
    }
  };
  poll(load);
  return load();
}

const SERVER_STATES = { up: 'Up', stopped: 'Stopped', lost: 'Lost (not seen, did not stop)' };

/** The servers' table: each server's state, when it was last seen, its sessions and counters. */
function renderServers(box, cluster) {
  if (!changed(box, cluster.servers)) return;
  const cols = ['Server', 'State', 'Last seen', 'Up for', 'Sessions', 'Accepted', 'Delivered', 'Bounced', 'Deferred'];
  render(box, h('table', { class: 'data responsive servers' },
    h('thead', {}, h('tr', {}, cols.map((l, i) => h('th', { scope: 'col', class: i >= 5 ? 'num' : null, text: l })))),
    h('tbody', {}, cluster.servers.map((m) => {
      const t = m.totals || {};
      const ss = m.sessions || {};
      const me = m.name === cluster.node;
      return h('tr', { class: `state-${m.state}` },
        h('td', { 'data-label': 'Server', class: 'break' },
          h('strong', { text: m.name }), me ? ' (this one)' : '',
          h('div', { class: 'muted small', text: `${m.hostname} · jes ${m.version}` })),
        h('td', { 'data-label': 'State' },
          h('span', { class: `badge srv-${m.state}`, text: SERVER_STATES[m.state] || m.state })),
        h('td', { 'data-label': 'Last seen', text: m.seen_secs_ago < 10 ? 'now' : `${duration(m.seen_secs_ago)} ago` }),
        h('td', { 'data-label': 'Up for', text: m.state === 'up' ? duration(Math.max(0, Date.now() / 1000 - m.started)) : '—' }),
        h('td', { 'data-label': 'Sessions', text: m.state === 'up' ? `SMTP ${num(ss.smtp || 0)} · POP3 ${num(ss.pop3 || 0)}` : '—' }),
        ['accepted', 'delivered', 'bounced', 'deferred'].map((k) => h('td', { 'data-label': k, class: 'num', text: num(t[k] || 0) })));
    }))));
}

/** Tells screen readers what changed since the last poll (not every poll: only changes). */
function announceTotals(t) {
  const prev = state.lastTotals;
  state.lastTotals = { ...t };
  if (!prev) return;
  const parts = [];
  for (const k of ['accepted', 'delivered', 'bounced', 'deferred']) {
    const d = (t[k] || 0) - (prev[k] || 0);
    if (d > 0) parts.push(`${d} ${k}`);
  }
  if (parts.length) announce(`New since last update: ${parts.join(', ')}.`);
}

/** The per-minute series for the last CHART_MINUTES minutes, missing minutes as zero. */
function minuteSeries(minutes) {
  const byStart = new Map();
  let latest = 0;
  for (const m of minutes) {
    const start = Math.floor(Number(m.start) / 60) * 60;
    if (!Number.isFinite(start)) continue;
    byStart.set(start, m);
    latest = Math.max(latest, start);
  }
  const now = Math.floor(Date.now() / 60000) * 60;
  const end = Math.max(now, latest);
  const out = [];
  for (let i = CHART_MINUTES - 1; i >= 0; i -= 1) {
    const start = end - i * 60;
    const m = byStart.get(start) || {};
    out.push({
      start,
      accepted: m.accepted || 0,
      delivered: m.delivered || 0,
      bounced: m.bounced || 0,
      deferred: m.deferred || 0,
    });
  }
  return out;
}

function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

function drawChart(box, minutes) {
  const data = minuteSeries(minutes);
  const width = Math.max(280, Math.floor(box.clientWidth || 600));
  const height = width < 500 ? 180 : 220;
  const pad = { l: 36, r: 10, t: 12, b: 26 };
  const iw = width - pad.l - pad.r;
  const ih = height - pad.t - pad.b;
  const peak = Math.max(0, ...data.flatMap((d) => SERIES.map((sr) => d[sr.key])));
  const max = niceMax(peak);
  const x = (i) => pad.l + (iw * i) / (data.length - 1);
  const y = (v) => pad.t + ih - (ih * v) / max;

  const totals = Object.fromEntries(SERIES.map((sr) => [sr.key, data.reduce((a, d) => a + d[sr.key], 0)]));
  const summary = `Last ${CHART_MINUTES} minutes: ${SERIES.map((sr) => `${num(totals[sr.key])} ${sr.label.toLowerCase()}`).join(', ')}; `
    + `busiest minute ${num(peak)} messages.`;

  const grid = [];
  const ticks = 4;
  for (let i = 0; i <= ticks; i += 1) {
    const v = (max * i) / ticks;
    grid.push(s('line', { class: 'grid', x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }));
    grid.push(s('text', { class: 'axis', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', text: num(Math.round(v * 10) / 10) }));
  }
  const step = width < 500 ? 20 : 10;
  for (let i = 0; i < data.length; i += 1) {
    const d = new Date(data[i].start * 1000);
    if (d.getMinutes() % step === 0) {
      grid.push(s('line', { class: 'tick', x1: x(i), x2: x(i), y1: pad.t + ih, y2: pad.t + ih + 4 }));
      // labels near either end are anchored inside the chart so they are not cut off
      let anchor = 'middle';
      if (x(i) > width - pad.r - 20) anchor = 'end';
      else if (x(i) < pad.l + 20) anchor = 'start';
      const tx = anchor === 'end' ? width - 2 : x(i);
      grid.push(s('text', { class: 'axis', x: tx, y: height - 6, 'text-anchor': anchor, text: hmFmt.format(d) }));
    }
  }
  const lines = SERIES.map((sr) => {
    const pts = data.map((d, i) => `${x(i).toFixed(1)},${y(d[sr.key]).toFixed(1)}`).join(' ');
    const dots = data.map((d, i) => (d[sr.key] > 0 ? s('circle', { cx: x(i), cy: y(d[sr.key]), r: 2.5 }) : null));
    return s('g', { class: `series s-${sr.key}` }, s('polyline', { points: pts }), dots);
  });
  const svg = s('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': 'chart-svg-title chart-svg-desc',
    class: 'chart-svg',
  },
  s('title', { id: 'chart-svg-title', text: 'Messages per minute' }),
  s('desc', { id: 'chart-svg-desc', text: summary }),
  grid,
  s('line', { class: 'baseline', x1: pad.l, x2: width - pad.r, y1: pad.t + ih, y2: pad.t + ih }),
  lines);
  box.replaceChildren(svg);
}

function renderChartTable(box, minutes) {
  const data = minuteSeries(minutes).filter((d) => d.accepted || d.delivered || d.bounced || d.deferred).reverse();
  const details = box.querySelector('details');
  const open = details ? details.open : false;
  const body = data.length
    ? h('table', { class: 'data compact' },
      h('caption', { class: 'visually-hidden', text: 'Messages per minute (minutes with activity, newest first)' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Minute' }),
        ['Accepted', 'Delivered', 'Bounced', 'Deferred'].map((l) => h('th', { scope: 'col', class: 'num', text: l })))),
      h('tbody', {}, data.map((d) => h('tr', {},
        h('th', { scope: 'row', 'data-label': 'Minute', text: hmFmt.format(new Date(d.start * 1000)) }),
        ['accepted', 'delivered', 'bounced', 'deferred'].map((k) => h('td', { class: 'num', 'data-label': k[0].toUpperCase() + k.slice(1), text: num(d[k]) }))))))
    : h('p', { class: 'muted', text: 'No messages in the last hour.' });
  box.replaceChildren(h('details', { open },
    h('summary', { text: 'Show the numbers as a table' }), body));
}

const EVENT_LABELS = {
  delivered: 'Delivered',
  'delivered-locally': 'Delivered locally',
  deferred: 'Deferred',
  bounced: 'Bounced',
};

function kindBadge(kind) {
  return h('span', { class: `badge k-${String(kind).replace(/[^a-z-]/g, '')}`, text: EVENT_LABELS[kind] || String(kind) });
}

function renderEvents(box, events) {
  if (!changed(box, events)) return;
  if (!events.length) {
    render(box, h('p', { class: 'empty', text: 'No deliveries or bounces yet.' }));
    return;
  }
  // From the database's shared history each event names its server: a column for it then.
  const cluster = events.some((e) => e.node);
  const heads = ['Time', 'Event', 'Recipient', 'Queue id', 'Detail'].concat(cluster ? ['Server'] : []);
  render(box, h('table', { class: 'data responsive events' },
    h('thead', {}, h('tr', {},
      heads.map((l) => h('th', { scope: 'col', text: l })))),
    h('tbody', {}, events.slice(0, 50).map((e) => h('tr', {},
      h('td', { 'data-label': 'Time' }, timeEl(e.time)),
      h('td', { 'data-label': 'Event' }, kindBadge(e.kind)),
      h('td', { 'data-label': 'Recipient', class: 'break', text: e.recipient || '—' }),
      h('td', { 'data-label': 'Queue id', class: 'mono break' },
        // a deferred message is still in the queue: link to it
        e.kind === 'deferred' && e.queue_id
          ? h('a', { href: `#/queue/${seg(e.queue_id)}`, text: e.queue_id })
          : e.queue_id || '—'),
      h('td', { 'data-label': 'Detail', class: 'break detail', text: e.detail || '' }),
      cluster ? h('td', { 'data-label': 'Server', class: 'event-node', text: e.node || '—' }) : null)))));
}

// ---------------------------------------------------------------------------------------------
// Queue

function showQueue(view) {
  setActiveNav('queue');
  const list = h('div', { id: 'queue-list', class: 'queue-list' }, loadingBlock('the queue'));
  const count = h('span', { id: 'queue-count' });
  const retryAll = h('button', { type: 'button', class: 'btn', id: 'retry-all', text: 'Retry all now' });
  const refresh = h('button', { type: 'button', class: 'btn btn-quiet', id: 'queue-refresh', text: 'Refresh' });
  render(main(),
    pageHeader('Queue', { sub: count, actions: [refresh, retryAll] }),
    list);

  let items = [];
  const load = async () => {
    try {
      const q = await api('GET', '/api/queue');
      if (!current(view)) return;
      items = Array.isArray(q) ? q : [];
      count.textContent = items.length
        ? `${plural(items.length, 'message', 'messages')} waiting for remote delivery`
        : 'Nothing is waiting';
      retryAll.disabled = items.length === 0;
      if (!changed(list, items)) return;
      if (!items.length) {
        render(list, h('div', { class: 'empty-state' },
          h('p', { class: 'empty', text: 'The queue is empty: every relayed message has been delivered or bounced.' })));
        return;
      }
      render(list, h('ul', { class: 'cards' }, items.map((m) => h('li', {}, queueCard(m, load)))));
    } catch (e) {
      if (current(view) && e.status !== 401) renderFresh(list, errorBlock(e, load));
    }
  };
  refresh.addEventListener('click', async () => {
    await load();
    notify('Queue refreshed.');
  });
  retryAll.addEventListener('click', async () => {
    retryAll.disabled = true;
    try {
      await api('POST', '/api/queue/retry-all');
      notify(`Retry requested for ${plural(items.length, 'message', 'messages')}.`);
      setTimeout(() => current(view) && load(), 1500);
    } catch (e) {
      showError(e);
    } finally {
      retryAll.disabled = false;
    }
  });
  poll(load);
  return load();
}

/** The recipients with their state; a recipient's error only when it differs from the
 *  message's last error (shown once below). */
function recipientList(recipients, shown) {
  return h('ul', { class: 'recipients' }, (recipients || []).map((r) => h('li', { class: 'recipient' },
    h('span', { class: `badge r-${String(r.state).replace(/[^a-z]/g, '')}`, text: r.state }),
    h('span', { class: 'break addr', text: r.address }),
    r.last_error && r.last_error !== shown ? h('span', { class: 'recipient-error break', text: r.last_error }) : null)));
}

function queueCard(m, reload) {
  const idKey = `q-${m.id}`;
  const retry = h('button', {
    type: 'button', class: 'btn btn-small', text: 'Retry now', 'aria-label': `Retry message ${m.id} now`,
    dataset: { key: `${idKey}-retry`, action: 'retry', id: m.id },
  });
  const del = h('button', {
    type: 'button', class: 'btn btn-small btn-danger-quiet', text: 'Delete…', 'aria-label': `Delete message ${m.id}`,
    dataset: { key: `${idKey}-delete`, action: 'delete', id: m.id },
  });
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      await api('POST', `/api/queue/${seg(m.id)}/retry`);
      notify(`Retry requested for ${m.id}: jes tries it within a second or two.`);
      setTimeout(reload, 1500);
    } catch (e) {
      showError(e);
      retry.disabled = false;
    }
  });
  del.addEventListener('click', () => deleteQueued(m, reload));
  const pending = (m.recipients || []).filter((r) => r.state === 'pending').length;
  return h('article', { class: 'card queue-item', 'data-queue-id': m.id, 'aria-labelledby': `${idKey}-title` },
    h('div', { class: 'queue-head' },
      h('h2', { class: 'queue-title', id: `${idKey}-title` },
        h('a', { href: `#/queue/${seg(m.id)}`, class: 'mono break', text: m.id, dataset: { key: `${idKey}-link` } })),
      h('div', { class: 'queue-actions' },
        h('a', {
          href: `#/history/${seg(m.id)}`, class: 'btn btn-small btn-quiet history-link', text: 'History',
          'aria-label': `Delivery history of message ${m.id}`, dataset: { key: `${idKey}-history` },
        }),
        retry, del)),
    h('dl', { class: 'facts' },
      fact('From', h('span', { class: 'break', text: m.sender || '<> (bounce)' })),
      fact('Queued', timeEl(m.created)),
      fact('Attempts', h('span', { class: 'attempts', text: num(m.attempts) })),
      fact('Next try', m.next_attempt ? h('span', { class: 'next-attempt' }, timeEl(m.next_attempt))
        : h('span', { class: 'next-attempt muted', text: pending ? 'now / in progress' : '—' })),
      fact('Size', bytes(m.size))),
    recipientList(m.recipients, m.last_error),
    m.last_error ? h('p', { class: 'last-error' }, h('span', { class: 'label', text: 'Last error: ' }),
      h('span', { class: 'break', text: m.last_error })) : null);
}

function fact(label, value) {
  return h('div', { class: 'fact' }, h('dt', { text: label }), h('dd', {}, value));
}

async function deleteQueued(m, after) {
  const choice = await confirmDialog({
    title: `Delete queued message ${m.id}?`,
    body: h('p', {}, 'The message to ', h('strong', { class: 'break', text: (m.recipients || []).map((r) => r.address).join(', ') || '—' }),
      ' will no longer be delivered. This cannot be undone.'),
    ok: 'Delete message',
    choices: [
      { value: 'true', label: 'Delete and bounce', hint: 'Send the sender a delivery failure report.' },
      { value: 'false', label: 'Delete silently', hint: 'The sender is not told.' },
    ],
  });
  if (choice === null) return;
  try {
    await api('DELETE', `/api/queue/${seg(m.id)}?bounce=${choice}`);
    notify(choice === 'true' ? `Deleted ${m.id}; the sender gets a bounce.` : `Deleted ${m.id}.`);
    await after();
  } catch (e) {
    showError(e);
  }
}

async function showQueued(view, id) {
  setActiveNav('queue');
  render(main(), pageHeader(`Queued message`, {
    crumbs: [{ label: 'Queue', href: '#/queue' }, { label: id }],
  }), loadingBlock('the message'));
  try {
    const m = await api('GET', `/api/queue/${seg(id)}`);
    if (!current(view)) return;
    render(main(),
      pageHeader('Queued message', { crumbs: [{ label: 'Queue', href: '#/queue' }, { label: m.id }] }),
      queueCard(m, async () => {
        if (current(view)) await showQueued(view, id);
      }),
      h('section', { class: 'card', 'aria-labelledby': 'queued-headers' },
        h('h2', { id: 'queued-headers', text: 'Message headers' }),
        h('pre', { class: 'source', tabindex: '0', text: m.headers || '' })));
  } catch (e) {
    if (!current(view) || e.status === 401) return;
    render(main(), pageHeader('Queued message', { crumbs: [{ label: 'Queue', href: '#/queue' }, { label: id }] }),
      e.status === 404
        ? h('p', { class: 'notice' }, 'This message is no longer in the queue (delivered, bounced or deleted). ',
          h('a', { href: '#/queue', text: 'Back to the queue' }), '.')
        : errorBlock(e, () => showQueued(view, id)));
  }
}

// ---------------------------------------------------------------------------------------------
// Mailboxes

function showMailboxes(view) {
  setActiveNav('mailboxes');
  const box = h('div', { id: 'mailbox-list', class: 'card table-card' }, loadingBlock('mailboxes'));
  const count = h('span');
  render(main(), pageHeader('Mailboxes', { sub: count }), box);
  const load = async () => {
    try {
      const list = await api('GET', '/api/mailboxes');
      if (!current(view)) return;
      const boxes = Array.isArray(list) ? list : [];
      const total = boxes.reduce((a, b) => a + (b.messages || 0), 0);
      count.textContent = `${plural(boxes.length, 'account', 'accounts')}, ${plural(total, 'message', 'messages')} waiting to be fetched`;
      if (!changed(box, boxes)) return;
      if (!boxes.length) {
        render(box, h('p', { class: 'empty', text: 'No accounts are configured in user.conf.' }));
        return;
      }
      render(box, h('table', { class: 'data responsive mailboxes' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Account' }),
          h('th', { scope: 'col', class: 'num', text: 'Messages' }),
          h('th', { scope: 'col', class: 'num', text: 'Size' }))),
        h('tbody', {}, boxes.map((b) => h('tr', { class: b.messages ? '' : 'is-empty' },
          h('th', { scope: 'row', 'data-label': 'Account' },
            h('a', { href: `#/mailboxes/${seg(b.address)}`, class: 'break', text: b.address, dataset: { key: `mb-${b.address}` } })),
          h('td', { class: 'num', 'data-label': 'Messages', text: num(b.messages) }),
          h('td', { class: 'num', 'data-label': 'Size', text: bytes(b.bytes) }))))));
    } catch (e) {
      if (current(view) && e.status !== 401) renderFresh(box, errorBlock(e, load));
    }
  };
  poll(load);
  return load();
}

function showMailbox(view, addr) {
  setActiveNav('mailboxes');
  const box = h('div', { id: 'message-list', class: 'card table-card' }, loadingBlock('messages'));
  const count = h('span');
  render(main(), pageHeader(addr, {
    crumbs: [{ label: 'Mailboxes', href: '#/mailboxes' }, { label: addr }],
    sub: count,
  }), box);
  const load = async () => {
    try {
      const list = await api('GET', `${mailboxPath(addr)}/messages`);
      if (!current(view)) return;
      const msgs = Array.isArray(list) ? list : [];
      count.textContent = msgs.length ? `${plural(msgs.length, 'message', 'messages')}, newest first` : '';
      if (!changed(box, msgs)) return;
      if (!msgs.length) {
        render(box, h('p', { class: 'empty', text: 'This mailbox is empty.' }));
        return;
      }
      render(box, h('table', { class: 'data responsive messages' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Subject' }),
          h('th', { scope: 'col', text: 'From' }),
          h('th', { scope: 'col', text: 'Received' }),
          h('th', { scope: 'col', class: 'num', text: 'Size' }))),
        h('tbody', {}, msgs.map((m) => h('tr', {},
          h('th', { scope: 'row', 'data-label': 'Subject' },
            h('a', {
              href: `#/mailboxes/${seg(addr)}/${seg(m.id)}`, class: 'break subject-link',
              text: m.subject || '(no subject)', dataset: { key: `msg-${m.id}` },
            })),
          h('td', { 'data-label': 'From', class: 'break', text: m.from || '—' }),
          h('td', { 'data-label': 'Received' }, timeEl(m.received ?? m.date)),
          h('td', { class: 'num', 'data-label': 'Size', text: bytes(m.size) }))))));
    } catch (e) {
      if (!current(view) || e.status === 401) return;
      renderFresh(box, e.status === 404
        ? h('p', { class: 'notice', text: 'There is no such mailbox.' })
        : errorBlock(e, load));
    }
  };
  poll(load);
  return load();
}

async function showMessage(view, addr, id) {
  setActiveNav('mailboxes');
  const crumbs = [
    { label: 'Mailboxes', href: '#/mailboxes' },
    { label: addr, href: `#/mailboxes/${seg(addr)}` },
    { label: 'Message' },
  ];
  render(main(), pageHeader('Message', { crumbs }), loadingBlock('the message'));
  let m;
  try {
    m = await api('GET', messagePath(addr, id));
  } catch (e) {
    if (!current(view) || e.status === 401) return;
    render(main(), pageHeader('Message', { crumbs }),
      e.status === 404
        ? h('p', { class: 'notice' }, 'This message is no longer in the mailbox (fetched and deleted over POP3, or deleted here). ',
          h('a', { href: `#/mailboxes/${seg(addr)}`, text: `Back to ${addr}` }), '.')
        : errorBlock(e, () => showMessage(view, addr, id)));
    return;
  }
  if (!current(view)) return;
  const base = messagePath(addr, m.id ?? id);
  const subject = m.subject || '(no subject)';

  const del = h('button', { type: 'button', class: 'btn btn-danger-quiet', id: 'message-delete', text: 'Delete…' });
  del.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Delete this message?',
      body: h('p', {}, 'The message ', h('strong', { class: 'break', text: subject }),
        ` is removed from ${addr}. The application polling this account will not see it. This cannot be undone.`),
      ok: 'Delete message',
    });
    if (!ok) return;
    try {
      await api('DELETE', base);
      notify(`Deleted “${subject}”.`);
      location.hash = `#/mailboxes/${seg(addr)}`;
    } catch (e) {
      showError(e.status === 409
        ? new Error(`Not deleted: a POP3 client has ${addr} open right now (${e.message}). Try again when it has finished.`)
        : e);
    }
  });

  const sourceBox = h('div', { class: 'source-box', id: 'source-box', hidden: true });
  const sourceBtn = h('button', {
    type: 'button', class: 'btn', id: 'view-source', text: 'View source', 'aria-expanded': 'false', 'aria-controls': 'source-box',
  });
  sourceBtn.addEventListener('click', async () => {
    const open = sourceBtn.getAttribute('aria-expanded') === 'true';
    if (open) {
      sourceBox.hidden = true;
      sourceBtn.setAttribute('aria-expanded', 'false');
      sourceBtn.textContent = 'View source';
      return;
    }
    sourceBtn.disabled = true;
    try {
      const text = await apiText(`${base}/raw`);
      sourceBox.replaceChildren(
        h('h2', { id: 'source-title', text: 'Source' }),
        h('pre', { class: 'source', id: 'raw-source', tabindex: '0', 'aria-labelledby': 'source-title', text }));
      sourceBox.hidden = false;
      sourceBtn.setAttribute('aria-expanded', 'true');
      sourceBtn.textContent = 'Hide source';
      sourceBox.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      showError(e);
    } finally {
      sourceBtn.disabled = false;
    }
  });

  const download = h('a', {
    class: 'btn', id: 'download-eml', href: `${base}/raw`, download: `${String(m.id ?? id).replace(/[^A-Za-z0-9._-]/g, '_')}.eml`,
    text: 'Download .eml',
  });

  const meta = h('dl', { class: 'facts message-meta' },
    fact('From', h('span', { class: 'break', id: 'msg-from', text: m.from || '—' })),
    fact('To', h('span', { class: 'break', text: m.to || '—' })),
    m.cc ? fact('Cc', h('span', { class: 'break', text: m.cc })) : null,
    fact('Date', h('span', { text: m.date ? absTimeOrRaw(m.date) : '—' })),
    fact('Size', bytes(m.size)));

  const parts = [];
  if (m.text !== null && m.text !== undefined) {
    parts.push(h('section', { class: 'card', 'aria-labelledby': 'text-title' },
      h('h2', { id: 'text-title', text: 'Text' }),
      h('pre', { class: 'mail-text', id: 'mail-text', text: m.text })));
  }
  if (m.has_html) {
    // Sandboxed: no allow-scripts, no allow-same-origin. The server also sends a CSP that forbids
    // scripts and remote content for this part.
    const frame = h('iframe', {
      class: 'mail-html', id: 'mail-html', src: `${base}/html`, sandbox: '', referrerpolicy: 'no-referrer',
      title: `HTML part of “${subject}”`, loading: 'lazy',
    });
    parts.push(h('section', { class: 'card', 'aria-labelledby': 'html-title' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'html-title', text: 'HTML' }),
        h('span', { class: 'muted small', text: 'Shown in a sandbox: scripts and forms in the mail do not run.' })),
      frame));
  }
  if (!parts.length) parts.push(h('p', { class: 'notice', text: 'This message has no text or HTML part to show.' }));

  const atts = m.attachments || [];
  const attSection = atts.length ? h('section', { class: 'card', 'aria-labelledby': 'att-title' },
    h('h2', { id: 'att-title', text: `Attachments (${atts.length})` }),
    h('ul', { class: 'attachments', id: 'attachments' }, atts.map((a) => h('li', {},
      h('a', {
        href: `${base}/attachments/${seg(a.index)}`,
        download: a.filename || `attachment-${a.index}`,
        class: 'attachment break',
        text: a.filename || `attachment ${a.index}`,
      }),
      h('span', { class: 'muted small', text: ` ${a.content_type || 'application/octet-stream'}, ${bytes(a.size)}` }))))) : null;

  const headers = h('section', { class: 'card', 'aria-labelledby': 'headers-title' },
    h('details', { id: 'all-headers' },
      h('summary', {}, h('h2', { id: 'headers-title', class: 'inline-h', text: `All headers (${(m.headers || []).length})` })),
      h('table', { class: 'data headers-table' },
        h('tbody', {}, (m.headers || []).map((hd) => h('tr', {},
          h('th', { scope: 'row', text: hd.name }),
          h('td', { class: 'break', text: hd.value })))))));

  const historyLink = h('a', {
    class: 'btn', id: 'message-history', href: `#/history/${seg(String(m.id ?? id).split(',S=')[0])}`,
    text: 'Delivery history',
  });

  render(main(),
    pageHeader(subject, { crumbs, actions: [sourceBtn, download, historyLink, del] }),
    h('section', { class: 'card', 'aria-label': 'Summary' }, meta),
    parts,
    attSection,
    headers,
    sourceBox);
}

// ---------------------------------------------------------------------------------------------
// Captured mail (capture=true): GET /api/captured, release and delete

async function releaseCaptured(id, to) {
  const r = await api('POST', `/api/captured/${seg(id)}/release`, to ? { to } : {});
  notify(`Released: sent to ${(r.to || []).join(', ')}.`);
}

function showCaptured(view) {
  setActiveNav('captured');
  const box = h('div', { id: 'captured-list', class: 'card table-card' }, loadingBlock('captured mail'));
  const count = h('span');
  const all = h('button', { type: 'button', class: 'btn', id: 'release-all', text: 'Release all…' });
  all.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Release all captured mail?',
      body: 'Every captured message is sent to its recipients now, even though capture mode stays on.',
      ok: 'Release all',
    });
    if (!ok) return;
    try {
      const r = await api('POST', '/api/captured/release-all');
      notify(`Released ${plural(r.released, 'message', 'messages')}.`);
      load();
    } catch (e) {
      showError(e);
    }
  });
  render(main(), pageHeader('Captured mail', { sub: count, actions: [all] }), box);
  const load = async () => {
    try {
      const list = await api('GET', '/api/captured');
      if (!current(view)) return;
      const msgs = Array.isArray(list) ? list : [];
      count.textContent = msgs.length ? `${plural(msgs.length, 'message', 'messages')} held, oldest first` : '';
      if (!changed(box, msgs)) return;
      if (!msgs.length) {
        render(box, h('p', { class: 'empty', text: 'No mail is held.' }));
        return;
      }
      render(box, h('table', { class: 'data responsive messages' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Subject' }),
          h('th', { scope: 'col', text: 'From' }),
          h('th', { scope: 'col', text: 'Held for' }),
          h('th', { scope: 'col', text: 'Received' }),
          h('th', { scope: 'col', class: 'num', text: 'Size' }))),
        h('tbody', {}, msgs.map((m) => h('tr', {},
          h('th', { scope: 'row', 'data-label': 'Subject' },
            h('a', {
              href: `#/captured/${seg(m.id)}`, class: 'break subject-link',
              text: m.subject || '(no subject)', dataset: { key: `cap-${m.id}` },
            })),
          h('td', { 'data-label': 'From', class: 'break', text: m.from || m.sender || '<>' }),
          h('td', { 'data-label': 'Held for', class: 'break held-for', text: (m.held || []).join(', ') }),
          h('td', { 'data-label': 'Received' }, timeEl(m.received)),
          h('td', { class: 'num', 'data-label': 'Size', text: bytes(m.size) }))))));
    } catch (e) {
      if (!current(view) || e.status === 401) return;
      renderFresh(box, errorBlock(e, load));
    }
  };
  poll(load);
  return load();
}

async function showCapturedMessage(view, id) {
  setActiveNav('captured');
  const crumbs = [{ label: 'Captured mail', href: '#/captured' }, { label: 'Message' }];
  render(main(), pageHeader('Captured message', { crumbs }), loadingBlock('the message'));
  let m;
  try {
    m = await api('GET', `/api/captured/${seg(id)}`);
  } catch (e) {
    if (!current(view) || e.status === 401) return;
    render(main(), pageHeader('Captured message', { crumbs }),
      e.status === 404
        ? h('p', { class: 'notice' }, 'This message is no longer held (released or deleted). ',
          h('a', { href: '#/captured', text: 'Back to the captured mail' }), '.')
        : errorBlock(e, () => showCapturedMessage(view, id)));
    return;
  }
  if (!current(view)) return;
  const base = `/api/captured/${seg(m.id)}`;
  const subject = m.subject || '(no subject)';

  const release = h('button', { type: 'button', class: 'btn btn-primary', id: 'captured-release', text: 'Release' });
  release.addEventListener('click', async () => {
    release.disabled = true;
    try {
      await releaseCaptured(m.id, null);
      location.hash = '#/captured';
    } catch (e) {
      release.disabled = false;
      showError(e);
    }
  });
  const del = h('button', { type: 'button', class: 'btn btn-danger-quiet', id: 'captured-delete', text: 'Delete…' });
  del.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Delete this captured message?',
      body: h('p', {}, 'The message ', h('strong', { class: 'break', text: subject }),
        ' is removed without being sent; nobody is told. This cannot be undone.'),
      ok: 'Delete message',
    });
    if (!ok) return;
    try {
      await api('DELETE', base);
      notify(`Deleted “${subject}”.`);
      location.hash = '#/captured';
    } catch (e) {
      showError(e);
    }
  });
  const toInput = h('input', {
    id: 'release-to', type: 'email', name: 'to', placeholder: 'tester@example.org', spellcheck: 'false', autocapitalize: 'none',
  });
  const toForm = h('form', { class: 'release-to', id: 'release-to-form' },
    h('label', { for: 'release-to', text: 'Send it to another address instead:' }), toInput,
    h('button', { type: 'submit', class: 'btn', id: 'release-to-submit', text: 'Release to this address' }));
  toForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const to = toInput.value.trim();
    if (!to) {
      toInput.focus();
      return;
    }
    try {
      await releaseCaptured(m.id, to);
      location.hash = '#/captured';
    } catch (e) {
      showError(e);
    }
  });

  const meta = h('dl', { class: 'facts message-meta' },
    fact('Held for', h('span', { class: 'break', id: 'captured-held', text: (m.held || []).join(', ') })),
    fact('Envelope sender', h('span', { class: 'break', text: m.sender || '<> (a notice from jes)' })),
    fact('From', h('span', { class: 'break', id: 'msg-from', text: m.from || '—' })),
    fact('To', h('span', { class: 'break', text: m.to || '—' })),
    m.cc ? fact('Cc', h('span', { class: 'break', text: m.cc })) : null,
    fact('Date', h('span', { text: m.date ? absTimeOrRaw(m.date) : '—' })),
    fact('Size', bytes(m.size)));

  const parts = [];
  if (m.text !== null && m.text !== undefined) {
    parts.push(h('section', { class: 'card', 'aria-labelledby': 'text-title' },
      h('h2', { id: 'text-title', text: 'Text' }),
      h('pre', { class: 'mail-text', id: 'mail-text', text: m.text })));
  }
  if (m.has_html) {
    // Sandboxed as in the mailbox view: no scripts, no same origin, and the server's CSP.
    parts.push(h('section', { class: 'card', 'aria-labelledby': 'html-title' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'html-title', text: 'HTML' }),
        h('span', { class: 'muted small', text: 'Shown in a sandbox: scripts and forms in the mail do not run.' })),
      h('iframe', {
        class: 'mail-html', id: 'mail-html', src: `${base}/html`, sandbox: '', referrerpolicy: 'no-referrer',
        title: `HTML part of “${subject}”`, loading: 'lazy',
      })));
  }
  if (!parts.length) parts.push(h('p', { class: 'notice', text: 'This message has no text or HTML part to show.' }));
  const atts = m.attachments || [];
  const attSection = atts.length ? h('section', { class: 'card', 'aria-labelledby': 'att-title' },
    h('h2', { id: 'att-title', text: `Attachments (${atts.length})` }),
    h('ul', { class: 'attachments', id: 'attachments' }, atts.map((a) => h('li', {},
      h('a', {
        href: `${base}/attachments/${seg(a.index)}`,
        download: a.filename || `attachment-${a.index}`,
        class: 'attachment break',
        text: a.filename || `attachment ${a.index}`,
      }),
      h('span', { class: 'muted small', text: ` ${a.content_type || 'application/octet-stream'}, ${bytes(a.size)}` }))))) : null;
  const headers = h('section', { class: 'card', 'aria-labelledby': 'headers-title' },
    h('details', { id: 'all-headers' },
      h('summary', {}, h('h2', { id: 'headers-title', class: 'inline-h', text: `All headers (${(m.headers || []).length})` })),
      h('table', { class: 'data headers-table' },
        h('tbody', {}, (m.headers || []).map((hd) => h('tr', {},
          h('th', { scope: 'row', text: hd.name }),
          h('td', { class: 'break', text: hd.value })))))));
  const historyLink = h('a', { class: 'btn', id: 'message-history', href: `#/history/${seg(m.id)}`, text: 'Delivery history' });
  const download = h('a', {
    class: 'btn', id: 'download-eml', href: `${base}/raw`, download: `${String(m.id).replace(/[^A-Za-z0-9._-]/g, '_')}.eml`,
    text: 'Download .eml',
  });

  render(main(),
    pageHeader(subject, { crumbs, actions: [release, download, historyLink, del] }),
    h('section', { class: 'card', 'aria-label': 'Summary' }, meta, toForm),
    parts,
    attSection,
    headers);
}

// ---------------------------------------------------------------------------------------------
// Delivery history: GET /api/history (the same search and events as `jes trace`)

const HISTORY_WORDS = {
  accepted: 'Accepted',
  refused: 'Refused',
  'delivered-locally': 'Delivered locally',
  delivered: 'Relayed',
  deferred: 'Deferred',
  bounced: 'Bounced',
  expired: 'Expired',
  'delay-notice': 'Delay notice',
  'deleted-admin': 'Deleted by an admin',
  'pop3-retrieved': 'Read over POP3',
  'pop3-deleted': 'Deleted over POP3',
  'webhook-sent': 'Webhook called',
  'webhook-failed': 'Webhook failed',
  'webhook-expired': 'Webhook given up',
  'webhook-deleted': 'Deleted after webhook',
  held: 'Held (capture mode)',
  released: 'Released from capture',
};

function historyBadge(kind) {
  const k = String(kind).replace(/[^a-z-]/g, '');
  return h('span', { class: `badge k-${k}`, text: HISTORY_WORDS[kind] || String(kind) });
}

/** "smtp.corp.example [10.0.0.5], TLS 1.3", or null when no server was involved. */
function historyServer(e) {
  if (!e.remote_host && !e.remote_ip) return null;
  const name = e.remote_host && e.remote_ip && e.remote_host !== e.remote_ip
    ? `${e.remote_host} [${e.remote_ip}]` : (e.remote_host || `[${e.remote_ip}]`);
  return `${name}, ${e.tls ? String(e.tls).replace(/^TLSv/, 'TLS ') : 'no TLS'}`;
}

/** Consecutive events of one message (the API lists each message's events together). */
function historyMessages(events) {
  const out = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (last && e.id && last[0].id === e.id) last.push(e);
    else out.push([e]);
  }
  return out;
}

function historyTimeline(events) {
  return h('ol', { class: 'timeline' }, events.map((e) => {
    const server = historyServer(e);
    return h('li', { class: 'timeline-event', dataset: { event: e.event } },
      h('span', { class: 'timeline-time' }, timeEl(e.time, { relative: false })),
      historyBadge(e.event),
      h('span', { class: 'break addr', text: e.recipient || '—' }),
      server ? h('span', { class: 'muted small break', text: server }) : null,
      e.attempt ? h('span', { class: 'muted small', text: `attempt ${e.attempt}` }) : null,
      e.reply ? h('code', { class: 'timeline-reply break', text: e.reply }) : null,
      // the database's history names the server that reported it
      e.node ? h('span', { class: 'muted small timeline-node', text: `on ${e.node}` }) : null);
  }));
}

function historyCard(events) {
  const first = events[0];
  return h('article', { class: 'card history-item', 'data-history-id': first.id || '' },
    h('h2', { class: 'queue-title' },
      first.id
        ? h('a', { href: `#/history/${seg(first.id)}`, class: 'break', text: first.subject || '(no subject)' })
        : h('span', { class: 'break', text: first.subject || '(refused before the message was kept)' })),
    h('dl', { class: 'facts' },
      fact('From', h('span', { class: 'break', text: first.sender || '<> (bounce)' })),
      fact('Id', h('span', { class: 'mono break', text: first.id || '—' })),
      fact('Message-ID', h('span', { class: 'mono break', text: first.message_id || '—' })),
      fact('Size', first.size ? bytes(first.size) : '—')),
    historyTimeline(events));
}

function showHistory(view, q) {
  setActiveNav('history');
  const input = h('input', {
    type: 'text', id: 'history-q', name: 'q', value: q, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'bob@example.org, @example.org, <message-id>, id or subject words',
  });
  const form = h('form', { class: 'history-search', role: 'search', id: 'history-form' },
    h('label', { for: 'history-q', text: 'Search the delivery history' }),
    h('div', { class: 'history-search-row' }, input,
      h('button', { type: 'submit', class: 'btn btn-primary', text: 'Search' })));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    const target = value ? `#/history?q=${encodeURIComponent(value)}` : '#/history';
    if (location.hash === target) route();
    else location.hash = target;
  });
  const box = h('div', { id: 'history-list' }, loadingBlock('the history'));
  const count = h('span', { id: 'history-count' });
  render(main(), pageHeader('History', { sub: count }), form, box);
  const load = async () => {
    try {
      const path = q ? `/api/history?q=${encodeURIComponent(q)}` : '/api/history?since=1d';
      const data = await api('GET', path);
      if (!current(view)) return;
      const messages = historyMessages(data.events || []);
      count.textContent = q
        ? `${plural(messages.length, 'message', 'messages')} matching “${q}”, newest first`
        : `The last day, newest first: ${plural(messages.length, 'message', 'messages')}`;
      if (!changed(box, data)) return;
      if (!messages.length) {
        render(box, h('p', { class: 'empty', text: 'No events match. The history keeps history.days days (30 by default).' }));
        return;
      }
      render(box, h('ul', { class: 'cards' }, messages.map((m) => h('li', {}, historyCard(m)))));
    } catch (e) {
      if (current(view) && e.status !== 401) renderFresh(box, errorBlock(e, load));
    }
  };
  poll(load);
  return load();
}

function showHistoryMessage(view, id) {
  setActiveNav('history');
  const crumbs = [{ label: 'History', href: '#/history' }, { label: id }];
  const box = h('div', { id: 'history-timeline' }, loadingBlock('the timeline'));
  render(main(), pageHeader('Message history', { crumbs }), box);
  const load = async () => {
    try {
      const data = await api('GET', `/api/history?q=${encodeURIComponent(id)}&limit=1000`);
      if (!current(view)) return;
      const events = (data.events || []).filter((e) => e.id === id);
      if (!changed(box, events)) return;
      if (!events.length) {
        render(box, h('p', { class: 'notice', text: 'No events of this message are in the history (never seen, forgotten, or older than history.days).' }));
        return;
      }
      render(box, historyCard(events));
    } catch (e) {
      if (current(view) && e.status !== 401) renderFresh(box, errorBlock(e, load));
    }
  };
  poll(load);
  return load();
}

function absTimeOrRaw(v) {
  const d = toDate(v);
  return d ? dateTimeFmt.format(d) : String(v);
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  document.getElementById('logout').addEventListener('click', logout);
  document.getElementById('skip-link').addEventListener('click', (ev) => {
    ev.preventDefault();
    const target = main().querySelector('h1') || main();
    target.focus();
  });
  window.addEventListener('hashchange', route);
  try {
    const data = await api('GET', '/api/session');
    setSession(data);
    route();
  } catch (e) {
    if (e.status === 401) {
      state.afterLogin = location.hash;
      showLogin();
    } else {
      render(main(), h('section', { class: 'card' },
        h('h1', { tabindex: '-1', text: 'The console cannot start' }),
        errorBlock(e, () => location.reload())));
    }
  }
}

start();
