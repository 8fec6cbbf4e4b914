// SnapGuard web UI: one vanilla ES2020 script, no framework, no build step.
// It talks to the JSON API under /api/v1 (docs/api.md). Every piece of data is put into the
// page with textContent / createElement (never innerHTML), so nothing from a snapshot can
// run as markup; the Content-Security-Policy forbids inline scripts and styles anyway.
'use strict';

// ---------------------------------------------------------------------------------------
// Theme: applied first thing (this script is loaded synchronously in <head>), so the page is
// painted in the right colours. An explicit choice is kept in localStorage 'sg-theme'.
// ---------------------------------------------------------------------------------------
const THEME_KEY = 'sg-theme';
const darkQuery = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;

function storedTheme() {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return t === 'dark' || t === 'light' ? t : null;
  } catch (_) {
    return null;
  }
}

function currentTheme() {
  return storedTheme() || (darkQuery && darkQuery.matches ? 'dark' : 'light');
}

function applyTheme() {
  const theme = currentTheme();
  document.documentElement.setAttribute('data-theme', theme);
  const btn = document.getElementById('theme-toggle');
  if (btn) btn.setAttribute('aria-pressed', theme === 'dark' ? 'true' : 'false');
}

applyTheme();
if (darkQuery && darkQuery.addEventListener) darkQuery.addEventListener('change', applyTheme);

// ---------------------------------------------------------------------------------------
// Small helpers: elements, SVG, formatting
// ---------------------------------------------------------------------------------------
const SVG_NS = 'http://www.w3.org/2000/svg';

/** Create an element. attrs: class, text, on<event> (function), other keys as attributes
 *  (true = boolean attribute, false/null/undefined = left out). Children: nodes or strings. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function svgEl(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in e) e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(parent, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function $(sel, root) {
  return (root || document).querySelector(sel);
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

function fmtBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '—';
  n = Number(n);
  if (Math.abs(n) < 1024) return `${n} B`;
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0)} ${BYTE_UNITS[i]}`;
}

function parseTime(t) {
  if (!t) return null;
  const d = new Date(t);
  return isNaN(d.getTime()) ? null : d;
}

function fmtTime(t) {
  const d = parseTime(t);
  if (!d) return t ? String(t) : '—';
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

function fmtDate(d) {
  return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/** "3 h ago", "in 12 min", "just now". */
function fmtAge(t, now) {
  const d = parseTime(t);
  if (!d) return '—';
  const secs = ((now || Date.now()) - d.getTime()) / 1000;
  const a = Math.abs(secs);
  let s;
  if (a < 45) return 'just now';
  if (a < 90 * 60) s = `${Math.round(a / 60)} min`;
  else if (a < 36 * 3600) s = `${Math.round(a / 3600)} h`;
  else if (a < 60 * 86400) s = `${Math.round(a / 86400)} d`;
  else if (a < 730 * 86400) s = `${Math.round(a / (30.44 * 86400))} mo`;
  else s = `${(a / (365.25 * 86400)).toFixed(1)} y`;
  return secs >= 0 ? `${s} ago` : `in ${s}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function fmtRatio(r) {
  return typeof r === 'number' && isFinite(r) && r > 0 ? `${r.toFixed(2)}×` : '—';
}

function timeEl(t, withAge) {
  const d = parseTime(t);
  const e = el('time', { datetime: t || '', title: d ? d.toISOString() : '' }, fmtTime(t));
  if (!withAge || !d) return e;
  return el('span', null, e, ' ', el('span', { class: 'muted' }, `(${fmtAge(t)})`));
}

function joinPath(dir, name) {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

function parentPath(p) {
  const parts = p.split('/').filter(Boolean);
  parts.pop();
  return `/${parts.join('/')}`;
}

function baseName(p) {
  const parts = p.split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : '/';
}

// Exact paths. File names need not be UTF-8: the API gives every entry a lossy `path` (for
// display) and, only when the exact bytes are not UTF-8, `path_hex` (lowercase hex of them).
// Requests carry `path_hex=` instead of `path=` when there is one; hash routes add `&hex=`.

/** A hex string from outside (hash route, API), lowercased; null unless it is whole bytes. */
function cleanHex(hex) {
  if (typeof hex !== 'string') return null;
  const h = hex.toLowerCase();
  return /^(?:[0-9a-f]{2})+$/.test(h) ? h : null;
}

/** The hex unless its bytes are valid UTF-8 (then the plain path is exact and is used). */
function neededHex(hex) {
  if (!hex) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return null;
  } catch (_) {
    return hex;
  }
}

/** The components of a path given as hex of its bytes, split at the "2f" ('/') bytes. Only
 *  even offsets are byte boundaries ("a2f3" has no '/'). Empty components (leading, doubled
 *  or trailing slashes) are dropped like path.split('/').filter(Boolean) does; since 0x2f
 *  never occurs inside a multibyte UTF-8 sequence nor in a lossy replacement, the components
 *  line up one to one with those of the lossy path. */
function hexComponents(hex) {
  const out = [];
  let start = 0;
  for (let i = 0; i + 1 < hex.length; i += 2) {
    if (hex[i] === '2' && hex[i + 1] === 'f') {
      out.push(hex.slice(start, i));
      start = i + 2;
    }
  }
  out.push(hex.slice(start));
  return out.filter(Boolean);
}

/** Hex of the ancestor made of the first `n` components of a hex path (root: null), or null
 *  when that ancestor is valid UTF-8 (its lossy path is exact). */
function ancestorHex(hex, n) {
  if (!hex || n <= 0) return null;
  return neededHex(hexComponents(hex).slice(0, n).map((c) => `2f${c}`).join(''));
}

/** Hex of the parent of a hex path (see parentPath), or null. */
function parentHex(hex) {
  return hex ? ancestorHex(hex, hexComponents(hex).length - 1) : null;
}

/** API query parameters naming a path: path_hex when the exact bytes are known, else path. */
function pathQuery(path, hex) {
  return hex ? { path_hex: hex } : { path };
}

/** Hash route parameters naming a path: the display path, plus hex when it is not exact. */
function pathHash(path, hex) {
  return hex ? { path, hex } : { path };
}

function isLocked(s) {
  if (!s.locked_until) return false;
  if (s.locked_until === 'forever') return true;
  const d = parseTime(s.locked_until);
  return !d || d.getTime() > Date.now();
}

const TEXT_EXT = new Set(['txt', 'md', 'log', 'conf', 'cfg', 'ini', 'toml', 'yaml', 'yml', 'json',
  'csv', 'rs', 'c', 'h', 'py', 'sh', 'js', 'css', 'html', 'xml', 'svg']);
const IMAGE_EXT = new Set(['png', 'jpg', 'jpeg', 'gif', 'webp']);
const PREVIEW_TEXT_MAX = 1024 * 1024;
const PREVIEW_IMAGE_MAX = 20 * 1024 * 1024;

/** 'text', 'image' or null: what the server lets us preview inline (by file extension). */
function previewKind(name) {
  const i = name.lastIndexOf('.');
  if (i < 0) return null;
  const ext = name.slice(i + 1).toLowerCase();
  if (IMAGE_EXT.has(ext)) return 'image';
  if (TEXT_EXT.has(ext)) return 'text';
  return null;
}

// ---------------------------------------------------------------------------------------
// API access
// ---------------------------------------------------------------------------------------
const API = '/api/v1';
const ROLES = { viewer: 0, operator: 1, admin: 2 };
let session = null;

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function can(role) {
  return !!session && (ROLES[session.role] ?? -1) >= ROLES[role];
}

function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') s.set(k, v);
  }
  const t = s.toString();
  return t ? `?${t}` : '';
}

function fileUrl(id, path, inline, hex) {
  return `${API}/snapshots/${encodeURIComponent(id)}/file${q({ ...pathQuery(path, hex), inline: inline ? 1 : null })}`;
}

function archiveUrl(id, path, format, hex) {
  return `${API}/snapshots/${encodeURIComponent(id)}/archive${q({ ...pathQuery(path, hex), format })}`;
}

async function rawFetch(method, path, body, accept) {
  const headers = { Accept: accept || 'application/json' };
  const opts = { method, credentials: 'same-origin', headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session && session.csrf_token) {
    headers['X-CSRF-Token'] = session.csrf_token;
  }
  let res;
  try {
    res = await fetch(path.startsWith('/') && !path.startsWith(API) ? API + path : path, opts);
  } catch (e) {
    throw new ApiError(0, 'network', `The server cannot be reached (${e.message}).`);
  }
  if (!res.ok) {
    let code = null;
    let message = `HTTP ${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      code = j.code || null;
      if (j.message) message = j.message;
    } catch (_) { /* not JSON */ }
    const err = new ApiError(res.status, code, message, res.headers.get('Retry-After'));
    if (res.status === 401 && !(method === 'POST' && path === '/session')) {
      sessionLost();
    }
    throw err;
  }
  return res;
}

async function api(method, path, body) {
  const res = await rawFetch(method, path, body);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

const get = (path) => api('GET', path);

// ---------------------------------------------------------------------------------------
// Status messages (aria-live region #status)
// ---------------------------------------------------------------------------------------
let statusTimer = null;

function status(message, kind) {
  const region = $('#status');
  if (!region) return;
  clearTimeout(statusTimer);
  clear(region);
  if (!message) return;
  region.append(el('div', { class: `msg ${kind || ''}` }, message));
  if (kind !== 'error') statusTimer = setTimeout(() => clear(region), 8000);
}

function errorText(e) {
  if (e instanceof ApiError) {
    if (e.code === 'forbidden') return `Not allowed: ${e.message}`;
    return e.message;
  }
  return String(e && e.message ? e.message : e);
}

function showError(e, where) {
  if (e instanceof ApiError && e.status === 401) return;
  status(`${where ? `${where}: ` : ''}${errorText(e)}`, 'error');
}

function errorBox(e) {
  return el('div', { class: 'card bad', role: 'alert' }, errorText(e));
}

// ---------------------------------------------------------------------------------------
// Session, login and logout
// ---------------------------------------------------------------------------------------
function showLogin() {
  teardown();
  $('#login-view').hidden = false;
  $('#view').hidden = true;
  $('#nav').hidden = true;
  $('#user-info').hidden = true;
  $('#logout').hidden = true;
  clear($('#view'));
  const u = $('#username');
  if (u) setTimeout(() => (u.value ? $('#password') : u).focus(), 0);
}

function sessionLost() {
  const wasIn = !!session;
  session = null;
  showLogin();
  if (wasIn) status('Your session has ended; please log in again.', 'error');
}

function showApp() {
  $('#login-view').hidden = true;
  $('#view').hidden = false;
  $('#nav').hidden = false;
  const info = clear($('#user-info'));
  info.append(el('span', { class: 'visually-hidden' }, 'Logged in as '), session.username,
    el('span', { class: `badge role-badge ${session.role}` }, session.role));
  info.hidden = false;
  $('#logout').hidden = false;
}

async function onLogin(ev) {
  ev.preventDefault();
  const err = $('#login-error');
  const btn = $('#login-submit');
  err.textContent = '';
  const username = $('#username').value.trim();
  const password = $('#password').value;
  if (!username || !password) {
    err.textContent = 'Enter your user name and password.';
    return;
  }
  btn.disabled = true;
  try {
    session = await api('POST', '/session', { username, password });
    $('#password').value = '';
    showApp();
    routedBefore = true;
    status(`Logged in as ${session.username}.`, 'ok');
    route();
  } catch (e) {
    if (e.code === 'invalid_credentials' || e.status === 401) {
      err.textContent = 'Wrong user name or password.';
    } else if (e.code === 'too_many_attempts' || e.status === 429) {
      const s = Number(e.retryAfter);
      err.textContent = `Too many failed attempts. Try again${s ? ` in ${Math.ceil(s / 60)} min` : ' later'}.`;
    } else {
      err.textContent = errorText(e);
    }
  } finally {
    btn.disabled = false;
  }
}

async function onLogout() {
  try {
    await api('DELETE', '/session');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e, 'Logging out');
  }
  session = null;
  showLogin();
  status('Logged out.', 'ok');
}

// ---------------------------------------------------------------------------------------
// Routing: #/page/arg?query
// ---------------------------------------------------------------------------------------
let cleanups = [];
let routeSeq = 0;
// The first page after loading keeps the browser's focus order (skip link first); later
// navigations move focus to the new page's heading.
let routedBefore = false;

function onCleanup(f) {
  cleanups.push(f);
}

function teardown() {
  for (const f of cleanups) {
    try { f(); } catch (_) { /* ignore */ }
  }
  cleanups = [];
}

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const qi = h.indexOf('?');
  const pathPart = qi >= 0 ? h.slice(0, qi) : h;
  const params = new URLSearchParams(qi >= 0 ? h.slice(qi + 1) : '');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || 'dashboard', args: parts.slice(1), params };
}

function hashFor(page, args, params) {
  let h = `#/${page}`;
  for (const a of args || []) h += `/${encodeURIComponent(a)}`;
  return h + q(params || {});
}

const PAGES = {
  dashboard: { nav: 'dashboard', title: 'Dashboard', render: renderDashboard },
  snapshots: { nav: 'snapshots', title: 'Snapshots', render: renderSnapshots },
  browse: { nav: 'snapshots', title: 'Browse', render: renderBrowse },
  diff: { nav: 'snapshots', title: 'Changes', render: renderDiff },
  timemachine: { nav: 'timemachine', title: 'Time machine', render: renderTimeMachine },
  jobs: { nav: 'jobs', title: 'Jobs', render: renderJobs },
  settings: { nav: 'settings', title: 'Settings', render: renderSettings },
};

async function route() {
  if (!session) {
    showLogin();
    return;
  }
  teardown();
  const seq = ++routeSeq;
  const r = parseHash();
  const page = PAGES[r.page] || PAGES.dashboard;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.getAttribute('data-nav') === page.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${page.title} · SnapGuard`;
  const view = clear($('#view'));
  view.append(el('p', { class: 'muted spinner', role: 'status' }, 'Loading'));
  const root = el('div', { class: 'page' });
  try {
    await page.render(root, r.args, r.params, () => seq === routeSeq);
  } catch (e) {
    if (seq !== routeSeq) return;
    if (e instanceof ApiError && e.status === 401) return;
    clear(root).append(el('h1', null, page.title), errorBox(e));
  }
  if (seq !== routeSeq) return;
  clear(view).append(root);
  // After a navigation, move focus to the new page's heading (for keyboard and screen
  // reader users) unless something inside the page already has it.
  const h1 = root.querySelector('h1');
  const active = document.activeElement;
  if (h1 && routedBefore && (!active || active === document.body || $('#nav').contains(active))) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: true });
  }
  if (root.focusAfter && routedBefore) root.focusAfter();
  routedBefore = true;
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---------------------------------------------------------------------------------------
// Generic UI pieces: tables, dialogs, badges
// ---------------------------------------------------------------------------------------
function table(id, headers, rows, caption) {
  const thead = el('thead', null, el('tr', null, headers.map((h) => {
    const [label, cls] = Array.isArray(h) ? h : [h, null];
    return el('th', { scope: 'col', class: cls }, label);
  })));
  const t = el('table', { id }, caption ? el('caption', { class: 'visually-hidden' }, caption) : null,
    thead, el('tbody', null, rows));
  return el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || id }, t);
}

function badge(text, cls) {
  return el('span', { class: `badge ${cls || text}` }, text);
}

function tagChips(tags) {
  return (tags || []).map((t) => el('span', { class: 'tag' }, t));
}

/** A modal form. fields: [{name, label, value, type, help, options}]. Resolves to the values or
 *  null when cancelled. */
function formDialog(title, fields, submitLabel) {
  return new Promise((resolve) => {
    const dlg = el('dialog', { 'aria-labelledby': 'dlg-title' });
    const form = el('form', { method: 'dialog' });
    const inputs = {};
    form.append(el('h2', { id: 'dlg-title' }, title));
    for (const f of fields) {
      const id = `dlg-${f.name}`;
      let input;
      if (f.options) {
        input = el('select', { id, name: f.name }, f.options.map(([v, l]) => el('option', { value: v }, l)));
        input.value = f.value || f.options[0][0];
      } else if (f.type === 'textarea') {
        input = el('textarea', { id, name: f.name, rows: '3' });
        input.value = f.value || '';
      } else {
        input = el('input', { id, name: f.name, type: f.type || 'text', value: f.value || '', autocomplete: 'off' });
      }
      if (f.help) input.setAttribute('aria-describedby', `${id}-help`);
      inputs[f.name] = input;
      form.append(el('div', { class: 'field' }, el('label', { for: id }, f.label), input,
        f.help ? el('small', { id: `${id}-help`, class: 'muted' }, f.help) : null));
    }
    const cancel = el('button', { type: 'button', class: 'btn' }, 'Cancel');
    const ok = el('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel || 'Save');
    form.append(el('div', { class: 'actions' }, cancel, ok));
    dlg.append(form);
    document.body.append(dlg);
    let result = null;
    cancel.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      result = {};
      for (const [k, i] of Object.entries(inputs)) result[k] = i.value;
      dlg.close();
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    const opener = document.activeElement;
    dlg.showModal();
    dlg.addEventListener('close', () => { if (opener && opener.isConnected) opener.focus(); });
  });
}

/** The restore-to-server form (admins). setPath() changes what it restores; `hex` is the
 *  exact path's hex when it is not UTF-8 (then sent as path_hex instead of path). */
function restoreForm(snapshotId, path, hex) {
  let current = path;
  let currentHex = hex || null;
  const what = el('code', null, current);
  const target = el('input', { id: 'restore-target', name: 'target', type: 'text', required: true,
    placeholder: '/srv/restore', autocomplete: 'off', spellcheck: 'false' });
  const overwrite = el('select', { id: 'restore-overwrite', name: 'overwrite' },
    el('option', { value: 'never' }, 'never'),
    el('option', { value: 'if-changed' }, 'if changed'),
    el('option', { value: 'always' }, 'always'));
  overwrite.value = 'if-changed';
  const submit = el('button', { type: 'submit', id: 'restore-submit', class: 'btn btn-primary' }, 'Restore');
  const result = el('div', { id: 'restore-result', class: 'restore-result', role: 'status', 'aria-live': 'polite' });
  const form = el('form', { id: 'restore-form', class: 'card panel', novalidate: true },
    el('h2', null, 'Restore ', what, ' to the server'),
    el('div', { class: 'inline-form' },
      el('div', { class: 'field' }, el('label', { for: 'restore-target' }, 'Target directory on the server'), target),
      el('div', { class: 'field' }, el('label', { for: 'restore-overwrite' }, 'Overwrite existing files'), overwrite),
      submit),
    result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(result);
    const t = target.value.trim();
    if (!t.startsWith('/')) {
      result.append(el('p', { class: 'error-msg', role: 'alert' }, 'The target must be an absolute path (start with /).'));
      target.focus();
      return;
    }
    submit.disabled = true;
    result.append(el('p', { class: 'muted spinner' }, `Restoring ${current} to ${t}`));
    try {
      const r = await api('POST', '/restore', { snapshot: snapshotId, ...pathQuery(current, currentHex), target: t, overwrite: overwrite.value });
      clear(result).append(el('p', null,
        `Restored ${r.files ?? 0} files, ${r.dirs ?? 0} directories, ${fmtBytes(r.bytes ?? 0)}`,
        r.skipped_unchanged ? `; ${r.skipped_unchanged} unchanged` : '',
        r.skipped_existing ? `; ${r.skipped_existing} existing left alone` : '',
        r.overwritten ? `; ${r.overwritten} overwritten` : '', '.'));
      status(`Restored ${current} to ${t}.`, 'ok');
    } catch (e) {
      clear(result).append(el('p', { class: 'error-msg', role: 'alert' }, errorText(e)));
    } finally {
      submit.disabled = false;
    }
  });
  form.setSnapshot = (id) => {
    snapshotId = id;
  };
  form.setPath = (p, h) => {
    current = p;
    currentHex = h || null;
    what.textContent = p;
  };
  return form;
}

// ---------------------------------------------------------------------------------------
// SVG charts
// ---------------------------------------------------------------------------------------
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function niceBytesMax(v) {
  if (!(v > 0)) return 1024;
  let unit = 1;
  while (v / unit >= 1024) unit *= 1024;
  return niceMax(v / unit) * unit;
}

/** A line/area chart of points [{t: Date, v: number, label}] into an existing <svg>. */
function lineChart(svg, points, opts) {
  const W = 640;
  const H = 260;
  const m = { l: 70, r: 18, t: 14, b: 34 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  clear(svg);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', opts.title);
  svg.append(svgEl('title', null, opts.title));
  if (!points.length) {
    svg.append(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No snapshots yet'));
    return;
  }
  let t0 = points[0].t.getTime();
  let t1 = points[points.length - 1].t.getTime();
  if (t1 - t0 < 60000) {
    t0 -= 43200000;
    t1 += 43200000;
  }
  const vmax = opts.bytes ? niceBytesMax(Math.max(...points.map((p) => p.v))) : niceMax(Math.max(...points.map((p) => p.v)));
  const x = (t) => m.l + ((t - t0) / (t1 - t0)) * pw;
  const y = (v) => m.t + ph - (v / vmax) * ph;
  const yFmt = opts.bytes ? fmtBytes : (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  const g = svgEl('g');
  for (let i = 0; i <= 4; i++) {
    const v = (vmax * i) / 4;
    const yy = y(v);
    g.append(svgEl('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: yy, y2: yy }));
    g.append(svgEl('text', { x: m.l - 6, y: yy + 4, 'text-anchor': 'end' }, yFmt(v)));
  }
  const ticks = Math.min(5, Math.max(2, points.length));
  for (let i = 0; i < ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / (ticks - 1);
    const xx = x(t);
    g.append(svgEl('line', { class: 'axis', x1: xx, x2: xx, y1: m.t + ph, y2: m.t + ph + 4 }));
    g.append(svgEl('text', { x: xx, y: H - 12, 'text-anchor': i === 0 ? 'start' : i === ticks - 1 ? 'end' : 'middle' },
      fmtDate(new Date(t))));
  }
  g.append(svgEl('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
  g.append(svgEl('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }));
  svg.append(g);
  const coords = points.map((p) => [x(p.t.getTime()), y(p.v)]);
  const line = coords.map(([a, b], i) => `${i ? 'L' : 'M'}${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
  const base = (m.t + ph).toFixed(1);
  svg.append(svgEl('path', { class: 'area', d: `${line} L${coords[coords.length - 1][0].toFixed(1)},${base} L${coords[0][0].toFixed(1)},${base} Z` }));
  svg.append(svgEl('path', { class: 'line', d: line }));
  const step = Math.max(1, Math.ceil(points.length / 400));
  points.forEach((p, i) => {
    if (i % step && i !== points.length - 1) return;
    svg.append(svgEl('circle', { class: 'point', cx: coords[i][0].toFixed(1), cy: coords[i][1].toFixed(1), r: 3 },
      svgEl('title', null, `${fmtTime(p.t.toISOString())}: ${yFmt(p.v)}${p.label ? ` (${p.label})` : ''}`)));
  });
}

/** Squarified treemap layout of items [{value}] in a rectangle. */
function squarify(items, x, y, w, h) {
  const out = [];
  const total = items.reduce((a, b) => a + b.value, 0);
  if (!(total > 0)) return out;
  const scale = (w * h) / total;
  const rest = items.filter((i) => i.value > 0).sort((a, b) => b.value - a.value);
  const worst = (row, side) => {
    const areas = row.map((r) => r.value * scale);
    const s = areas.reduce((a, b) => a + b, 0);
    const mx = Math.max(...areas);
    const mn = Math.min(...areas);
    return Math.max((side * side * mx) / (s * s), (s * s) / (side * side * mn));
  };
  while (rest.length) {
    const side = Math.min(w, h);
    let row = [rest.shift()];
    while (rest.length && worst(row.concat([rest[0]]), side) <= worst(row, side)) row.push(rest.shift());
    const area = row.reduce((a, b) => a + b.value * scale, 0);
    if (w >= h) {
      const rw = area / h;
      let yy = y;
      for (const it of row) {
        const hh = (it.value * scale) / rw;
        out.push({ item: it, x, y: yy, w: rw, h: hh });
        yy += hh;
      }
      x += rw;
      w -= rw;
    } else {
      const rh = area / w;
      let xx = x;
      for (const it of row) {
        const ww = (it.value * scale) / rh;
        out.push({ item: it, x: xx, y, w: ww, h: rh });
        xx += ww;
      }
      y += rh;
      h -= rh;
    }
  }
  return out;
}

const CHANGE_KINDS = ['added', 'removed', 'modified'];

/** Treemap of changed bytes per directory group, each group split by kind of change. */
function treemap(groups) {
  const W = 800;
  const H = 360;
  const svg = svgEl('svg', { id: 'diff-treemap', class: 'treemap', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': 'Changed bytes by directory' });
  svg.append(svgEl('title', null, 'Changed bytes by directory'));
  const items = groups.map((g) => ({ ...g, value: CHANGE_KINDS.reduce((a, k) => a + (g[k] || 0), 0) }));
  const cells = squarify(items, 0, 0, W, H);
  if (!cells.length) {
    svg.append(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'muted' }, 'No file content changed'));
    return svg;
  }
  for (const c of cells) {
    const g = c.item;
    const grp = svgEl('g');
    let offset = 0;
    const horizontal = c.w >= c.h;
    for (const k of CHANGE_KINDS) {
      const v = g[k] || 0;
      if (!v) continue;
      const frac = v / g.value;
      const r = horizontal
        ? { x: c.x + offset * c.w, y: c.y, width: frac * c.w, height: c.h }
        : { x: c.x, y: c.y + offset * c.h, width: c.w, height: frac * c.h };
      offset += frac;
      grp.append(svgEl('rect', { class: k, x: r.x.toFixed(1), y: r.y.toFixed(1),
        width: Math.max(0, r.width).toFixed(1), height: Math.max(0, r.height).toFixed(1) },
      svgEl('title', null, `${g.path}: ${k} ${fmtBytes(v)}`)));
    }
    if (c.w > 70 && c.h > 30) {
      const maxChars = Math.floor(c.w / 7);
      const label = g.path.length > maxChars ? `…${g.path.slice(-(maxChars - 1))}` : g.path;
      grp.append(svgEl('text', { x: (c.x + 5).toFixed(1), y: (c.y + 15).toFixed(1) }, label));
      grp.append(svgEl('text', { x: (c.x + 5).toFixed(1), y: (c.y + 29).toFixed(1) }, fmtBytes(g.value)));
    }
    svg.append(grp);
  }
  return svg;
}

function legend() {
  return el('div', { class: 'legend', 'aria-hidden': 'true' },
    CHANGE_KINDS.map((k) => el('span', null, el('span', { class: `swatch ${k}` }), k)));
}

// ---------------------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------------------
function card(name, title, value, sub, bad) {
  return el('section', { class: `card${bad ? ' bad' : ''}`, 'data-card': name, 'aria-label': title },
    el('h2', { class: 'card-title' }, title),
    value !== null ? el('div', { class: 'card-value' }, value) : null,
    sub ? el('div', { class: 'card-sub' }, sub) : null);
}

async function renderDashboard(root) {
  const [repo, stats, runs, snaps] = await Promise.allSettled([
    get('/repository'), get('/stats'), get('/runs?limit=50'), get('/snapshots'),
  ]);
  for (const r of [repo, stats, runs, snaps]) {
    if (r.status === 'rejected' && r.reason instanceof ApiError && r.reason.status === 401) throw r.reason;
  }
  root.append(el('h1', null, 'Dashboard'));
  const dash = el('div', { id: 'dashboard' });
  root.append(dash);
  const cards = el('div', { class: 'cards' });
  dash.append(cards);

  // Last backup per source (host + paths).
  if (snaps.status === 'fulfilled') {
    const latest = new Map();
    for (const s of snaps.value) {
      const key = `${s.hostname}:${(s.paths || []).join(', ')}`;
      const cur = latest.get(key);
      if (!cur || parseTime(s.time) > parseTime(cur.time)) latest.set(key, s);
    }
    const list = el('ul', { class: 'last-backups' });
    const entries = [...latest.entries()].sort((a, b) => parseTime(a[1].time) - parseTime(b[1].time));
    let stale = false;
    for (const [key, s] of entries) {
      const old = Date.now() - parseTime(s.time).getTime() > 2 * 86400000;
      stale = stale || old;
      list.append(el('li', null,
        el('a', { class: 'lb-name', href: hashFor('browse', [s.id], { path: '/' }) }, key),
        el('span', { class: `lb-age${old ? ' stale' : ''}`, title: fmtTime(s.time) }, fmtAge(s.time))));
    }
    const c = card('last-backup', 'Last backup per source', null, null, stale);
    c.append(entries.length ? list : el('p', { class: 'muted' }, 'No snapshots yet.'));
    cards.append(c);
    cards.append(card('snapshots', 'Snapshots', String(snaps.value.length),
      snaps.value.length ? `newest ${fmtAge(snaps.value[0].time)}` : null));
  } else {
    cards.append(card('last-backup', 'Last backup per source', '—', errorText(snaps.reason), true));
  }

  if (runs.status === 'fulfilled') {
    const failed = runs.value.filter((r) => r.status === 'failed' || r.status === 'interrupted');
    const running = runs.value.filter((r) => r.status === 'running').length;
    const sub = el('span', null, runs.value.length ? `of the last ${runs.value.length} runs` : 'no runs yet',
      running ? `, ${running} running` : '');
    if (failed.length) {
      sub.append(el('br'), 'latest: ', el('a', { href: hashFor('jobs', [String(failed[0].id)]) },
        `${failed[0].job} ${fmtAge(failed[0].started)}`));
    }
    cards.append(card('failures', 'Failed runs', String(failed.length), sub, failed.length > 0));
  } else {
    cards.append(card('failures', 'Failed runs', '—', errorText(runs.reason), true));
  }

  if (repo.status === 'fulfilled') {
    const r = repo.value;
    cards.append(card('stored', 'Repository size', fmtBytes(r.stored_size),
      el('span', { class: 'mono' }, r.location || '')));
  } else {
    cards.append(card('stored', 'Repository size', '—', errorText(repo.reason), true));
  }

  if (stats.status === 'fulfilled') {
    const st = stats.value;
    const saved = st.logical_size > 0 && st.stored_size >= 0
      ? Math.max(0, 1 - st.stored_size / st.logical_size) : null;
    cards.append(card('savings', 'Space saved', saved === null ? '—' : `${(saved * 100).toFixed(1)} %`,
      `${fmtBytes(st.logical_size)} of files in ${fmtBytes(st.stored_size)}; dedup ${fmtRatio(st.dedup_ratio)}, compression ${fmtRatio(st.compression_ratio)}`));
    const series = (st.snapshots || []).map((s) => ({ ...s, t: parseTime(s.time) })).filter((s) => s.t)
      .sort((a, b) => a.t - b.t);
    let cum = 0;
    const growth = series.map((s) => {
      cum += s.bytes_stored || 0;
      return { t: s.t, v: cum, label: `${s.short_id} +${fmtBytes(s.bytes_stored || 0)}` };
    });
    const count = series.map((s, i) => ({ t: s.t, v: i + 1, label: `${s.short_id} ${s.hostname}` }));
    const growthSvg = svgEl('svg', { id: 'chart-growth' });
    const countSvg = svgEl('svg', { id: 'chart-count' });
    lineChart(growthSvg, growth, { title: 'Storage growth (bytes stored, cumulative)', bytes: true });
    lineChart(countSvg, count, { title: 'Snapshots over time' });
    dash.append(el('div', { class: 'charts' },
      el('section', { class: 'card' }, el('h2', { class: 'card-title' }, 'Storage growth'), growthSvg),
      el('section', { class: 'card' }, el('h2', { class: 'card-title' }, 'Snapshot count'), countSvg)));
  } else {
    cards.append(card('savings', 'Space saved', '—', errorText(stats.reason), true));
    dash.append(el('div', { class: 'charts' }, svgEl('svg', { id: 'chart-growth', class: 'chart' }),
      svgEl('svg', { id: 'chart-count', class: 'chart' })));
  }
}

// ---------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------
const snapFilter = { host: '', tag: '', path: '' };

/** The snapshot before `s` of the same host and paths (else of the same host), or null.
 *  `all` is newest first. */
function previousSnapshot(all, s) {
  const key = (x) => `${x.hostname}\n${(x.paths || []).join('\n')}`;
  const older = all.filter((x) => parseTime(x.time) < parseTime(s.time));
  return older.find((x) => key(x) === key(s)) || older.find((x) => x.hostname === s.hostname) || null;
}

function lockCell(s) {
  if (!s.locked_until) return el('span', { class: 'muted', title: 'not locked' }, '—', el('span', { class: 'visually-hidden' }, 'not locked'));
  const forever = s.locked_until === 'forever';
  const b = badge(isLocked(s) ? 'locked' : 'lock expired', isLocked(s) ? 'locked' : 'unlocked');
  return el('span', null, b, el('br'), el('small', { class: 'muted' }, forever ? 'forever' : `until ${fmtTime(s.locked_until)}`));
}

async function editTags(s) {
  const v = await formDialog(`Tags of ${s.short_id}`, [
    { name: 'tags', label: 'Tags (comma separated)', value: (s.tags || []).join(', ') },
  ]);
  if (!v) return;
  const tags = [...new Set(v.tags.split(',').map((t) => t.trim()).filter(Boolean))];
  try {
    await api('PUT', `/snapshots/${encodeURIComponent(s.id)}/tags`, { tags });
    status(`Tags of ${s.short_id} saved.`, 'ok');
    route();
  } catch (e) {
    showError(e, 'Saving the tags');
  }
}

async function editComment(s) {
  const v = await formDialog(`Comment on ${s.short_id}`, [
    { name: 'comment', label: 'Comment (empty removes it)', value: s.comment || '', type: 'textarea' },
  ]);
  if (!v) return;
  try {
    await api('PUT', `/snapshots/${encodeURIComponent(s.id)}/comment`, { comment: v.comment.trim() });
    status(`Comment of ${s.short_id} saved.`, 'ok');
    route();
  } catch (e) {
    showError(e, 'Saving the comment');
  }
}

async function lockSnapshot(s) {
  const v = await formDialog(`Lock ${s.short_id}`, [
    { name: 'duration', label: 'Lock for', value: '30d',
      help: 'A duration such as 7d, 30d, 6m or 1y. A lock is never shortened; a locked snapshot cannot be forgotten.' },
  ], 'Lock');
  if (!v) return;
  const duration = v.duration.trim();
  if (!duration) {
    status('Give a duration such as 30d.', 'error');
    return;
  }
  try {
    const r = await api('POST', `/snapshots/${encodeURIComponent(s.id)}/lock`, { duration });
    status(`${s.short_id} is locked${r && r.locked_until ? ` until ${fmtTime(r.locked_until)}` : ''}.`, 'ok');
    route();
  } catch (e) {
    showError(e, 'Locking');
  }
}

async function renderSnapshots(root) {
  const all = await get('/snapshots');
  root.append(el('h1', null, 'Snapshots'));
  const hosts = [...new Set(all.map((s) => s.hostname))].sort();
  const tags = [...new Set(all.flatMap((s) => s.tags || []))].sort();
  const hostSel = el('select', { id: 'filter-host' }, el('option', { value: '' }, 'All hosts'),
    hosts.map((h) => el('option', { value: h }, h)));
  const tagSel = el('select', { id: 'filter-tag' }, el('option', { value: '' }, 'All tags'),
    tags.map((t) => el('option', { value: t }, t)));
  const pathIn = el('input', { id: 'filter-path', type: 'search', placeholder: 'e.g. /home', autocomplete: 'off' });
  hostSel.value = hosts.includes(snapFilter.host) ? snapFilter.host : '';
  tagSel.value = tags.includes(snapFilter.tag) ? snapFilter.tag : '';
  pathIn.value = snapFilter.path;
  const count = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  root.append(el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter snapshots', onsubmit: (e) => e.preventDefault() },
    el('div', { class: 'field' }, el('label', { for: 'filter-host' }, 'Host'), hostSel),
    el('div', { class: 'field' }, el('label', { for: 'filter-tag' }, 'Tag'), tagSel),
    el('div', { class: 'field' }, el('label', { for: 'filter-path' }, 'Path contains'), pathIn)), count);
  const holder = el('div');
  root.append(holder);

  const draw = () => {
    snapFilter.host = hostSel.value;
    snapFilter.tag = tagSel.value;
    snapFilter.path = pathIn.value.trim();
    const shown = all.filter((s) => (!snapFilter.host || s.hostname === snapFilter.host) &&
      (!snapFilter.tag || (s.tags || []).includes(snapFilter.tag)) &&
      (!snapFilter.path || (s.paths || []).some((p) => p.includes(snapFilter.path))));
    count.textContent = `${shown.length} of ${all.length} snapshots`;
    const rows = shown.map((s) => {
      const prev = previousSnapshot(all, s);
      const actions = el('div', { class: 'actions' },
        el('a', { class: 'btn btn-small', href: hashFor('browse', [s.id], { path: '/' }), 'data-action': 'browse' }, 'Browse'),
        prev ? el('a', { class: 'btn btn-small', href: hashFor('diff', [s.id], { against: prev.id }), 'data-action': 'compare',
          title: `Compare with ${prev.short_id}` }, 'Compare with previous') : null,
        can('operator') ? el('button', { type: 'button', class: 'btn btn-small', 'data-action': 'edit-tags', onclick: () => editTags(s) }, 'Tags') : null,
        can('operator') ? el('button', { type: 'button', class: 'btn btn-small', 'data-action': 'edit-comment', onclick: () => editComment(s) }, 'Comment') : null,
        can('admin') ? el('button', { type: 'button', class: 'btn btn-small', 'data-action': 'lock', onclick: () => lockSnapshot(s) }, 'Lock') : null);
      return el('tr', { 'data-snapshot': s.id },
        el('td', { class: 'nowrap' }, timeEl(s.time), el('br'), el('small', { class: 'muted' }, fmtAge(s.time))),
        el('td', null, el('code', { title: s.id }, s.short_id)),
        el('td', null, s.hostname),
        el('td', { class: 'paths' }, (s.paths || []).join(', ')),
        el('td', null, tagChips(s.tags)),
        el('td', null, s.comment || ''),
        el('td', null, lockCell(s)),
        el('td', null, actions));
    });
    clear(holder).append(shown.length
      ? table('snapshots-table', ['Time', 'ID', 'Host', 'Paths', 'Tags', 'Comment', 'Lock', 'Actions'], rows, 'Snapshots')
      : el('p', { class: 'empty' }, all.length ? 'No snapshot matches the filters.' : 'No snapshots yet.'));
  };
  hostSel.addEventListener('change', draw);
  tagSel.addEventListener('change', draw);
  pathIn.addEventListener('input', draw);
  draw();
}

// ---------------------------------------------------------------------------------------
// Diff between two snapshots
// ---------------------------------------------------------------------------------------
function groupChanges(changes) {
  const groups = new Map();
  for (const c of changes) {
    if (c.type !== 'file') continue;
    const first = c.path.split('/').filter(Boolean)[0];
    const key = first ? `/${first}` : '/';
    const g = groups.get(key) || { path: key, added: 0, removed: 0, modified: 0 };
    if (g[c.change] !== undefined) g[c.change] += c.size || 0;
    groups.set(key, g);
  }
  return [...groups.values()];
}

async function renderDiff(root, args, params) {
  const id = args[0];
  const against = params.get('against');
  const d = await get(`/snapshots/${encodeURIComponent(id)}/diff${q({ against })}`);
  const from = d.from || {};
  const to = d.to || {};
  root.append(el('h1', null, 'Changes ', el('code', null, from.short_id || against || '?'), ' → ',
    el('code', null, to.short_id || id)));
  root.append(el('p', { class: 'muted' }, `${fmtTime(from.time)} → ${fmtTime(to.time)}`, ' · ',
    to.hostname || '', ' · ', (to.paths || []).join(', ')));
  root.append(el('div', { class: 'toolbar' },
    el('a', { class: 'btn', href: hashFor('browse', [to.id || id], { path: '/' }) }, `Browse ${to.short_id || id}`),
    from.id ? el('a', { class: 'btn', href: hashFor('browse', [from.id], { path: '/' }) }, `Browse ${from.short_id}`) : null));
  const changes = d.changes || [];
  const totals = d.totals || {};
  const counts = {};
  for (const c of changes) counts[c.change] = (counts[c.change] || 0) + 1;
  const cards = el('div', { class: 'cards' });
  for (const k of ['added', 'removed', 'modified', 'metadata']) {
    cards.append(card(`diff-${k}`, k[0].toUpperCase() + k.slice(1),
      k === 'metadata' ? String(counts[k] || 0) : fmtBytes(totals[k] || 0),
      k === 'metadata' ? 'entries with new metadata only' : `${counts[k] || 0} entries`));
  }
  root.append(cards);
  const groups = (d.groups && d.groups.length ? d.groups : groupChanges(changes));
  root.append(el('section', { class: 'card panel', 'aria-labelledby': 'treemap-title' },
    el('h2', { id: 'treemap-title', class: 'card-title' }, 'Changed bytes by directory'), legend(), treemap(groups)));
  const LIMIT = 2000;
  root.append(el('h2', null, `Changed entries (${d.changed ?? changes.length})`));
  if (d.truncated || changes.length > LIMIT) {
    root.append(el('p', { class: 'muted' }, `Showing the first ${Math.min(LIMIT, changes.length)}.`));
  }
  const hasOld = changes.some((c) => c.old_size !== undefined && c.old_size !== null);
  const rows = changes.slice(0, LIMIT).map((c) => el('tr', { 'data-path': c.path },
    el('td', { class: 'paths' }, c.change === 'removed' || !to.id ? c.path
      : el('a', { href: hashFor('browse', [to.id], c.type === 'dir' ? pathHash(c.path, cleanHex(c.path_hex))
        : pathHash(parentPath(c.path), parentHex(cleanHex(c.path_hex)))) }, c.path)),
    el('td', null, badge(c.change)),
    el('td', null, c.type),
    el('td', { class: 'num' }, c.type === 'file' ? fmtBytes(c.size) : ''),
    hasOld ? el('td', { class: 'num' }, c.old_size !== undefined && c.old_size !== null ? fmtBytes(c.old_size) : '') : null));
  const heads = ['Path', 'Change', 'Type', ['Size', 'num']].concat(hasOld ? [['Old size', 'num']] : []);
  root.append(changes.length ? table('diff-table', heads, rows, 'Changed entries')
    : el('p', { class: 'empty' }, 'Nothing changed.'));
}

// ---------------------------------------------------------------------------------------
// Browse a snapshot
// ---------------------------------------------------------------------------------------
/** A small SVG icon for an entry type (no icon font, no emoji: they are not everywhere). */
const TYPE_ICON_PATHS = {
  dir: 'M1.5 3.5h5l1.5 1.5h6.5v8h-13z',
  file: 'M3.5 1.5h6l3 3v10h-9z M9.5 1.5v3h3',
  symlink: 'M3.5 1.5h6l3 3v10h-9z M5.5 11l4-4 M6.5 7h3v3',
};

function typeIcon(type) {
  const d = TYPE_ICON_PATHS[type] || 'M4 4h8v8h-8z';
  return svgEl('svg', { class: `type-icon ${type}`, viewBox: '0 0 16 16', width: '16', height: '16', 'aria-hidden': 'true', focusable: 'false' },
    svgEl('path', { d }));
}

function breadcrumbs(snap, path, hex) {
  const ol = el('ol');
  ol.append(el('li', null, el('a', { href: hashFor('browse', [snap.id], { path: '/' }) }, `${snap.short_id}:/`)));
  const parts = path.split('/').filter(Boolean);
  // Exact ancestors only when the hex components line up with the display ones.
  const exact = hex && hexComponents(hex).length === parts.length ? hex : null;
  let acc = '';
  parts.forEach((p, i) => {
    acc += `/${p}`;
    ol.append(el('li', null, i === parts.length - 1
      ? el('span', { 'aria-current': 'location' }, p)
      : el('a', { href: hashFor('browse', [snap.id], pathHash(acc, ancestorHex(exact, i + 1))) }, p)));
  });
  return el('nav', { id: 'breadcrumbs', class: 'breadcrumbs', 'aria-label': 'Path' }, ol);
}

/** Preview of a file of a snapshot into `box` (text in <pre>, images as <img>). */
async function showPreview(box, snapId, path, size, hex) {
  clear(box);
  const kind = previewKind(baseName(path));
  if (!kind) {
    box.append(el('p', { class: 'muted' }, 'No preview for this kind of file; download it instead.'));
    return;
  }
  if (kind === 'image') {
    if (size > PREVIEW_IMAGE_MAX) {
      box.append(el('p', { class: 'muted' }, `Too large to preview (${fmtBytes(size)}).`));
      return;
    }
    box.append(el('img', { class: 'preview-img', src: fileUrl(snapId, path, true, hex), alt: `Preview of ${baseName(path)}` }));
    return;
  }
  if (size > PREVIEW_TEXT_MAX) {
    box.append(el('p', { class: 'muted' }, `Too large to preview (${fmtBytes(size)}); download it instead.`));
    return;
  }
  box.append(el('p', { class: 'muted spinner' }, 'Loading preview'));
  try {
    const text = await fetchText(snapId, path, hex);
    clear(box).append(el('pre', { class: 'preview-pre', tabindex: '0', 'aria-label': `Content of ${baseName(path)}` }, text));
  } catch (e) {
    clear(box).append(el('p', { class: 'error-msg' }, errorText(e)));
  }
}

async function fetchText(snapId, path, hex) {
  const res = await rawFetch('GET', fileUrl(snapId, path, true, hex), undefined, 'text/plain');
  return res.text();
}

function downloadLinks(snapId, path, isDir, small, hex) {
  if (!can('operator')) return [];
  if (!isDir) {
    return [el('a', { class: small ? 'btn btn-small' : 'btn', href: fileUrl(snapId, path, false, hex), download: baseName(path), 'data-action': 'download' }, 'Download')];
  }
  const name = path === '/' ? 'snapshot' : baseName(path);
  return [
    el('a', { class: 'btn', href: archiveUrl(snapId, path, 'tar', hex), download: `${name}.tar`, 'data-action': 'download-tar' }, 'Download .tar'),
    el('a', { class: 'btn', href: archiveUrl(snapId, path, 'zip', hex), download: `${name}.zip`, 'data-action': 'download-zip' }, 'Download .zip'),
  ];
}

async function renderBrowse(root, args, params) {
  const id = args[0];
  let path = params.get('path') || '/';
  if (!path.startsWith('/')) path = `/${path}`;
  let hex = cleanHex(params.get('hex'));
  const [snap, tree] = await Promise.all([
    get(`/snapshots/${encodeURIComponent(id)}`),
    get(`/snapshots/${encodeURIComponent(id)}/tree${q(pathQuery(path, hex))}`),
  ]);
  path = tree.path || path;
  const node = tree.node || null;
  hex = cleanHex(tree.path_hex) || cleanHex(node && node.path_hex) || hex;
  const isDir = !node || node.type === 'dir';
  root.append(el('h1', null, 'Browse ', el('code', null, snap.short_id)));
  root.append(el('p', { class: 'muted' }, `${fmtTime(snap.time)} · ${snap.hostname} · ${(snap.paths || []).join(', ')}`,
    snap.comment ? ` · ${snap.comment}` : ''));
  root.append(breadcrumbs(snap, path, hex));
  const restore = can('admin') ? restoreForm(snap.id, path, hex) : null;

  if (!isDir) {
    // The path is a file (or other non-directory): show it directly.
    root.append(filePanel(snap, node, restore));
    if (restore) root.append(restore);
    return;
  }
  root.append(el('div', { class: 'toolbar' },
    downloadLinks(snap.id, path, true, false, hex),
    el('a', { class: 'btn', href: hashFor('timemachine', [], pathHash(path, hex)), 'data-action': 'history' }, 'History'),
    path !== '/' ? el('a', { class: 'btn', href: hashFor('browse', [snap.id], pathHash(parentPath(path), parentHex(hex))) }, 'Up') : null));

  const panel = el('div', { id: 'file-panel' });
  const entries = (tree.entries || []).slice().sort((a, b) =>
    (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.name.localeCompare(b.name));
  const rows = entries.map((n) => {
    const p = n.path || joinPath(path, n.name);
    const h = cleanHex(n.path_hex);
    let nameCell;
    if (n.type === 'dir') {
      nameCell = el('a', { class: 'entry-link', href: hashFor('browse', [snap.id], pathHash(p, h)) }, n.name);
    } else {
      nameCell = el('button', { type: 'button', class: 'btn-link entry-link', 'aria-controls': 'file-panel',
        onclick: () => {
          clear(panel).append(filePanel(snap, n, restore));
          if (restore) restore.setPath(p, h);
          const h2 = panel.querySelector('h2');
          if (h2) { h2.setAttribute('tabindex', '-1'); h2.focus(); }
        } }, n.name);
    }
    return el('tr', { 'data-path': p },
      el('td', null, typeIcon(n.type), nameCell,
        n.type === 'symlink' && n.link_target ? el('span', { class: 'muted' }, ` → ${n.link_target}`) : null),
      el('td', null, n.type),
      el('td', { class: 'num' }, n.type === 'file' ? fmtBytes(n.size) : ''),
      el('td', { class: 'nowrap' }, timeEl(n.mtime)),
      el('td', null, el('code', null, n.permissions || '')),
      el('td', null, el('div', { class: 'actions' },
        n.type === 'file' ? downloadLinks(snap.id, p, false, true, h) : null,
        n.type === 'dir' ? null : el('a', { class: 'btn btn-small', href: hashFor('timemachine', [], pathHash(p, h)) }, 'History'))));
  });
  root.append(entries.length
    ? table('browse-table', ['Name', 'Type', ['Size', 'num'], 'Modified', 'Permissions', 'Actions'], rows, `Contents of ${path}`)
    : el('p', { class: 'empty' }, 'This directory is empty.'));
  root.append(panel);
  if (restore) root.append(restore);
}

function filePanel(snap, n, restore) {
  const p = n.path;
  const h = cleanHex(n.path_hex);
  const box = el('div', { class: 'preview' });
  const kind = previewKind(n.name || baseName(p));
  const details = el('dl', { class: 'details' },
    el('dt', null, 'Type'), el('dd', null, n.type),
    el('dt', null, 'Size'), el('dd', null, `${fmtBytes(n.size)} (${n.size} bytes)`),
    el('dt', null, 'Modified'), el('dd', null, timeEl(n.mtime, true)),
    el('dt', null, 'Permissions'), el('dd', null, el('code', null, n.permissions || '')),
    el('dt', null, 'Owner'), el('dd', null, `${n.user || n.uid}:${n.group || n.gid}`),
    n.link_target ? [el('dt', null, 'Target'), el('dd', null, n.link_target)] : null);
  const panel = el('section', { class: 'card panel', 'aria-label': `File ${p}` },
    el('h2', null, el('code', null, p)), details,
    el('div', { class: 'toolbar' },
      n.type === 'file' ? downloadLinks(snap.id, p, false, false, h) : null,
      n.type === 'file' && kind && can('operator') ? el('button', { type: 'button', class: 'btn', 'data-action': 'preview',
        onclick: () => showPreview(box, snap.id, p, n.size, h) }, 'Preview') : null,
      el('a', { class: 'btn', href: hashFor('timemachine', [], pathHash(p, h)), 'data-action': 'history' }, 'History'),
      restore ? el('a', { class: 'btn', href: '#restore-form', onclick: (e) => { e.preventDefault(); restore.setPath(p, h); $('#restore-target').focus(); } }, 'Restore…') : null),
    box);
  if (n.type === 'file' && kind && can('operator')) showPreview(box, snap.id, p, n.size, h);
  return panel;
}

// ---------------------------------------------------------------------------------------
// Time machine: every version of a path
// ---------------------------------------------------------------------------------------
/** Line diff of two texts (LCS on lines, common prefix and suffix trimmed first). Returns
 *  [{op: ' '|'+'|'-', line}] or null when too large. */
function splitLines(t) {
  const lines = t.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function lineDiff(a, b, cap) {
  const A = splitLines(a);
  const B = splitLines(b);
  let pre = 0;
  while (pre < A.length && pre < B.length && A[pre] === B[pre]) pre++;
  let suf = 0;
  while (suf < A.length - pre && suf < B.length - pre && A[A.length - 1 - suf] === B[B.length - 1 - suf]) suf++;
  const a2 = A.slice(pre, A.length - suf);
  const b2 = B.slice(pre, B.length - suf);
  if (a2.length > cap || b2.length > cap) return null;
  const n = a2.length;
  const m = b2.length;
  const w = m + 1;
  const L = new Uint16Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      L[i * w + j] = a2[i] === b2[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
    }
  }
  const out = A.slice(0, pre).map((line) => ({ op: ' ', line }));
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a2[i] === b2[j]) { out.push({ op: ' ', line: a2[i] }); i++; j++; }
    else if (L[(i + 1) * w + j] >= L[i * w + j + 1]) out.push({ op: '-', line: a2[i++] });
    else out.push({ op: '+', line: b2[j++] });
  }
  while (i < n) out.push({ op: '-', line: a2[i++] });
  while (j < m) out.push({ op: '+', line: b2[j++] });
  for (const line of A.slice(A.length - suf)) out.push({ op: ' ', line });
  return out;
}

/** The diff as a <pre>, long unchanged stretches folded. */
function diffView(ops) {
  const pre = el('pre', { class: 'diff-view', tabindex: '0', 'aria-label': 'Line differences' });
  const CTX = 3;
  const changed = ops.map((o) => o.op !== ' ');
  let k = 0;
  while (k < ops.length) {
    if (changed[k]) {
      const o = ops[k++];
      pre.append(el('span', { class: o.op === '+' ? 'add' : 'del' }, `${o.op} ${o.line}`));
      continue;
    }
    let end = k;
    while (end < ops.length && !changed[end]) end++;
    const runLen = end - k;
    const keepHead = k === 0 ? 0 : CTX;
    const keepTail = end === ops.length ? 0 : CTX;
    if (runLen > keepHead + keepTail + 1) {
      for (let t = k; t < k + keepHead; t++) pre.append(el('span', { class: 'ctx' }, `  ${ops[t].line}`));
      pre.append(el('span', { class: 'ctx muted' }, `  … ${runLen - keepHead - keepTail} unchanged lines …`));
      for (let t = end - keepTail; t < end; t++) pre.append(el('span', { class: 'ctx' }, `  ${ops[t].line}`));
    } else {
      for (let t = k; t < end; t++) pre.append(el('span', { class: 'ctx' }, `  ${ops[t].line}`));
    }
    k = end;
  }
  return pre;
}

async function renderTimeMachine(root, args, params) {
  const path = params.get('path') || '';
  let hex = path ? cleanHex(params.get('hex')) : null;
  root.append(el('h1', null, 'Time machine'));
  const input = el('input', { id: 'tm-path', type: 'text', value: path, placeholder: '/home/alice/notes.txt',
    autocomplete: 'off', spellcheck: 'false', required: true });
  const form = el('form', { class: 'inline-form', role: 'search', 'aria-label': 'Path history' },
    el('div', { class: 'field' }, el('label', { for: 'tm-path' }, 'Path'), input),
    el('button', { type: 'submit', id: 'tm-go', class: 'btn btn-primary' }, 'Show versions'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    let p = input.value.trim();
    if (!p) return;
    if (!p.startsWith('/')) p = `/${p}`;
    // The exact bytes stay only while the shown (lossy) path is not edited.
    navigate(hashFor('timemachine', [], pathHash(p, p === path ? hex : null)));
  });
  root.append(form);
  if (!path) {
    root.append(el('p', { class: 'muted' }, 'Enter an absolute path to see every version of it kept in the snapshots.'));
    root.focusAfter = () => input.focus();
    return;
  }
  const data = await get(`/versions${q(pathQuery(path, hex))}`);
  const versions = data.versions || [];
  hex = cleanHex(data.path_hex) || cleanHex(versions.length ? versions[0].path_hex : null) || hex;
  if (!versions.length) {
    root.append(el('p', { class: 'empty', role: 'status' }, `${path} is in none of the ${data.snapshots_searched ?? ''} snapshots.`));
    return;
  }
  root.append(el('p', { class: 'muted' }, `${versions.length} version${versions.length === 1 ? '' : 's'} in ${data.snapshots_with_path ?? '?'} of ${data.snapshots_searched ?? '?'} snapshots. Use ← and → to move along the timeline.`));
  const track = el('div', { class: 'timeline-track' });
  const timeline = el('div', { id: 'tm-timeline', class: 'timeline', role: 'group', 'aria-label': `Versions of ${path}` }, track);
  const details = el('section', { id: 'tm-details', class: 'card panel', 'aria-live': 'polite' });
  root.append(timeline, details);
  const buttons = versions.map((v, i) => {
    const b = el('button', { type: 'button', class: 'tm-version', 'data-version': String(v.version ?? i + 1),
      'aria-pressed': 'false', tabindex: '-1',
      'aria-label': `Version ${v.version ?? i + 1}, ${fmtTime(v.first && v.first.time)}, ${v.type === 'file' ? fmtBytes(v.size) : v.type}` },
    el('span', { class: 'dot', 'aria-hidden': 'true' }),
    el('span', null, v.first ? fmtDate(parseTime(v.first.time)) : `#${i + 1}`),
    el('span', { class: 'tm-size' }, v.type === 'file' ? fmtBytes(v.size) : v.type));
    b.addEventListener('click', () => select(i, false));
    track.append(b);
    return b;
  });
  timeline.addEventListener('keydown', (e) => {
    const cur = buttons.indexOf(document.activeElement);
    if (cur < 0) return;
    let next = null;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') next = Math.min(buttons.length - 1, cur + 1);
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') next = Math.max(0, cur - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = buttons.length - 1;
    if (next === null) return;
    e.preventDefault();
    select(next, true);
  });
  const restore = can('admin') ? restoreForm(versions[0].last.id, path, hex) : null;

  function select(i, focus) {
    buttons.forEach((b, k) => {
      b.setAttribute('aria-pressed', k === i ? 'true' : 'false');
      b.tabIndex = k === i ? 0 : -1;
    });
    if (focus) buttons[i].focus();
    buttons[i].scrollIntoView({ block: 'nearest', inline: 'nearest' });
    showVersion(i);
  }

  function showVersion(i) {
    const v = versions[i];
    const snapId = v.last.id;
    const isFile = v.type === 'file';
    const kind = isFile ? previewKind(baseName(path)) : null;
    const box = el('div', { class: 'preview' });
    clear(details).append(
      el('h2', null, `Version ${v.version ?? i + 1} of ${versions.length}`),
      el('dl', { class: 'details' },
        el('dt', null, 'Type'), el('dd', null, v.type),
        isFile ? [el('dt', null, 'Size'), el('dd', null, `${fmtBytes(v.size)} (${v.size} bytes)`)] : null,
        v.entries !== undefined && v.entries !== null ? [el('dt', null, 'Entries'), el('dd', null, String(v.entries))] : null,
        el('dt', null, 'Modified'), el('dd', null, timeEl(v.mtime, true)),
        el('dt', null, 'Permissions'), el('dd', null, el('code', null, v.permissions || '')),
        el('dt', null, 'First seen'), el('dd', null, el('a', { href: hashFor('browse', [v.first.id], pathHash(parentPath(path), parentHex(hex))) }, v.first.short_id), ' ', timeEl(v.first.time, true)),
        el('dt', null, 'Last seen'), el('dd', null, el('a', { href: hashFor('browse', [v.last.id], pathHash(parentPath(path), parentHex(hex))) }, v.last.short_id), ' ', timeEl(v.last.time, true)),
        el('dt', null, 'Snapshots'), el('dd', null, String((v.snapshots || []).length))),
      el('div', { class: 'toolbar' },
        isFile && can('operator') ? el('a', { id: 'tm-download', class: 'btn', href: fileUrl(snapId, path, false, hex), download: baseName(path), 'data-action': 'download' }, 'Download') : null,
        !isFile && v.type === 'dir' ? downloadLinks(snapId, path, true, false, hex) : null,
        kind && can('operator') ? el('button', { type: 'button', class: 'btn', 'data-action': 'preview', onclick: () => showPreview(box, snapId, path, v.size, hex) }, 'Preview') : null,
        kind === 'text' && i > 0 && can('operator') ? el('button', { type: 'button', class: 'btn', 'data-action': 'compare', onclick: () => compare(i, box) }, 'Compare with previous') : null,
        el('a', { class: 'btn', href: hashFor('browse', [snapId], v.type === 'dir' ? pathHash(path, hex) : pathHash(parentPath(path), parentHex(hex))) }, 'Browse'),
        restore ? el('a', { class: 'btn', href: '#restore-form', onclick: (e) => { e.preventDefault(); $('#restore-target').focus(); } }, 'Restore…') : null),
      box);
    // The restore form restores from the selected version's snapshot.
    if (restore) restore.setSnapshot(snapId);
  }

  async function compare(i, box) {
    const a = versions[i - 1];
    const b = versions[i];
    if (a.type !== 'file' || b.type !== 'file') {
      clear(box).append(el('p', { class: 'muted' }, 'Only two file versions can be compared.'));
      return;
    }
    if (a.size > PREVIEW_TEXT_MAX || b.size > PREVIEW_TEXT_MAX) {
      clear(box).append(el('p', { class: 'muted' }, 'Too large to compare here; download both versions.'));
      return;
    }
    clear(box).append(el('p', { class: 'muted spinner' }, 'Comparing'));
    try {
      const [ta, tb] = await Promise.all([fetchText(a.last.id, path, hex), fetchText(b.last.id, path, hex)]);
      const ops = lineDiff(ta, tb, 2000);
      clear(box).append(el('h3', null, `Version ${a.version ?? i} → ${b.version ?? i + 1}`));
      if (!ops) box.append(el('p', { class: 'muted' }, 'Too many changed lines to compare here (more than 2000).'));
      else if (!ops.some((o) => o.op !== ' ')) box.append(el('p', { class: 'muted' }, 'The text is the same (only metadata differs).'));
      else box.append(diffView(ops));
    } catch (e) {
      clear(box).append(el('p', { class: 'error-msg' }, errorText(e)));
    }
  }

  if (restore) root.append(restore);
  select(versions.length - 1, false);
  root.focusAfter = () => {
    if (document.activeElement === document.body || (document.activeElement && document.activeElement.tagName === 'H1')) {
      buttons[versions.length - 1].focus({ preventScroll: true });
    }
  };
}

// ---------------------------------------------------------------------------------------
// Jobs and runs
// ---------------------------------------------------------------------------------------
function runDuration(r) {
  const s = parseTime(r.started);
  const e = parseTime(r.ended) || (r.status === 'running' ? new Date() : null);
  return s && e ? fmtDuration(e - s) : '—';
}

function runsTable(runs) {
  const rows = runs.map((r) => el('tr', { 'data-run': String(r.id) },
    el('td', null, el('a', { href: hashFor('jobs', [String(r.id)]) }, `#${r.id}`)),
    el('td', null, r.job),
    el('td', null, r.trigger || ''),
    el('td', null, badge(r.status)),
    el('td', { class: 'nowrap' }, timeEl(r.started), el('br'), el('small', { class: 'muted' }, fmtAge(r.started))),
    el('td', { class: 'num' }, runDuration(r)),
    el('td', { class: 'paths' }, r.error || '')));
  return runs.length
    ? table('runs-table', ['Run', 'Job', 'Trigger', 'Status', 'Started', ['Duration', 'num'], 'Error'], rows, 'Recent runs')
    : el('p', { class: 'empty' }, 'No runs yet.');
}

async function runJob(name, btn) {
  btn.disabled = true;
  try {
    const r = await api('POST', `/jobs/${encodeURIComponent(name)}/run`);
    status(`Job ${name} started (run #${r.run}).`, 'ok');
    navigate(hashFor('jobs', [String(r.run)]));
  } catch (e) {
    showError(e, `Starting ${name}`);
    btn.disabled = false;
  }
}

async function renderJobs(root, args, params, current) {
  if (args[0]) return renderRun(root, args[0], current);
  root.append(el('h1', null, 'Jobs'));
  const jobsBox = el('div');
  const runsBox = el('div');
  root.append(jobsBox, el('h2', null, 'Recent runs'), runsBox);
  const load = async () => {
    const [jobs, runs] = await Promise.all([get('/jobs'), get('/runs?limit=50')]);
    if (!current()) return;
    const rows = jobs.map((j) => {
      const last = j.last_run;
      const lastCell = j.running !== null && j.running !== undefined
        ? el('a', { href: hashFor('jobs', [String(j.running)]) }, badge('running'))
        : last ? el('span', null, el('a', { href: hashFor('jobs', [String(last.id)]) }, badge(last.status)), ' ',
          el('small', { class: 'muted' }, fmtAge(last.ended || last.started))) : el('span', { class: 'muted' }, 'never');
      return el('tr', { 'data-job': j.name },
        el('td', null, el('strong', null, j.name)),
        el('td', null, j.kind),
        el('td', null, el('code', null, j.schedule || ''), j.when === 'idle' ? el('small', { class: 'muted' }, ' (when idle)') : null),
        el('td', null, lastCell),
        el('td', { class: 'nowrap' }, j.next_run ? el('span', { title: fmtTime(j.next_run) }, fmtAge(j.next_run)) : '—'),
        el('td', null, can('operator') ? el('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-action': 'run',
          'data-job': j.name, disabled: j.running !== null && j.running !== undefined,
          onclick: (e) => runJob(j.name, e.currentTarget) }, 'Run now') : null));
    });
    clear(jobsBox).append(jobs.length
      ? table('jobs-table', ['Job', 'Kind', 'Schedule', 'Last run', 'Next run', 'Actions'], rows, 'Jobs')
      : el('p', { class: 'empty' }, 'No jobs are configured.'));
    clear(runsBox).append(runsTable(runs));
  };
  await load();
  // Keep the page fresh while it is shown (without stealing focus: only rebuilt when nothing
  // inside has focus).
  const timer = setInterval(() => {
    if (root.contains(document.activeElement) && document.activeElement !== document.body) return;
    load().catch(() => {});
  }, 15000);
  onCleanup(() => clearInterval(timer));
}

/** A progress report of the CLI (`--json` lines of type "progress") as short text, with the
 *  fraction done (or null) for the progress bar. */
function progressOf(line) {
  if (typeof line !== 'string' || !line.startsWith('{"') || !line.includes('"progress"')) return null;
  let j;
  try {
    j = JSON.parse(line);
  } catch (_) {
    return null;
  }
  if (!j || j.type !== 'progress' || !j.progress) return null;
  const p = j.progress;
  const frac = p.bytes_total > 0 ? Math.min(1, p.bytes_done / p.bytes_total) : null;
  let text = `${j.operation || 'progress'}: ${fmtBytes(p.bytes_done)}`;
  if (p.bytes_total) text += ` of ${fmtBytes(p.bytes_total)}`;
  if (p.files_total) text += `, ${p.files_done ?? 0} of ${p.files_total} files`;
  if (frac !== null) text += ` (${Math.round(frac * 100)} %)`;
  if (j.eta_s) text += `, about ${fmtDuration(j.eta_s * 1000)} left`;
  return { text, frac };
}

function appendLogLine(log, l) {
  const lvl = String(l.level || 'info').toLowerCase();
  const prog = progressOf(l.line);
  if (prog) {
    const bar = log.parentNode && log.parentNode.querySelector('#run-progress');
    if (bar) {
      bar.hidden = false;
      const meter = bar.querySelector('progress');
      if (prog.frac === null) meter.removeAttribute('value');
      else meter.value = prog.frac;
      bar.querySelector('span').textContent = prog.text;
    }
  }
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const d = parseTime(l.at);
  log.append(el('div', { class: `lvl-${lvl}`, 'data-seq': String(l.seq) },
    el('span', { class: 'ts' }, d ? d.toLocaleTimeString() : ''), ' ',
    lvl !== 'info' ? `${lvl.toUpperCase()} ` : '', prog ? prog.text : l.line));
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function renderRun(root, id, current) {
  let run = await get(`/runs/${encodeURIComponent(id)}`);
  const heading = el('h1', null);
  const info = el('dl', { class: 'details' });
  const actions = el('div', { class: 'toolbar' });
  const summary = el('div');
  const log = el('div', { id: 'run-log', class: 'log', role: 'log', tabindex: '0', 'aria-label': 'Task log' });
  const progress = el('div', { id: 'run-progress', class: 'run-progress', hidden: true },
    el('progress', { max: '1', 'aria-label': 'Progress' }), el('span'));
  root.append(el('p', null, el('a', { href: '#/jobs' }, '← Jobs')), heading, info, actions, summary,
    el('h2', null, 'Log'), progress, log);
  let lastSeq = 0;
  const addLines = (lines) => {
    for (const l of lines) {
      if (l.seq <= lastSeq) continue;
      lastSeq = l.seq;
      appendLogLine(log, l);
    }
  };

  const draw = () => {
    clear(heading).append(`Run #${run.id} · ${run.job} `, badge(run.status));
    append(clear(info), [
      el('dt', null, 'Trigger'), el('dd', null, run.trigger || '—'),
      el('dt', null, 'Started'), el('dd', null, timeEl(run.started, true)),
      el('dt', null, 'Ended'), el('dd', null, run.ended ? timeEl(run.ended, true) : '—'),
      el('dt', null, 'Duration'), el('dd', null, runDuration(run)),
      run.error ? [el('dt', null, 'Error'), el('dd', { class: 'error-msg' }, run.error)] : null]);
    clear(actions);
    if (run.status === 'running' && can('admin')) {
      actions.append(el('button', { type: 'button', id: 'run-cancel', class: 'btn btn-danger', 'data-action': 'cancel',
        onclick: async (e) => {
          e.currentTarget.disabled = true;
          try {
            run = await api('POST', `/runs/${encodeURIComponent(run.id)}/cancel`);
            status(`Cancelling run #${run.id}.`, 'ok');
            draw();
          } catch (err) {
            showError(err, 'Cancelling');
            e.currentTarget.disabled = false;
          }
        } }, 'Cancel run'));
    }
    if (run.status !== 'running') progress.hidden = true;
    clear(summary);
    if (run.summary && typeof run.summary === 'object') {
      summary.append(el('h2', null, 'Summary'), settingsList(run.summary, summaryText));
    }
  };
  draw();

  if (run.status !== 'running') {
    addLines(await get(`/runs/${encodeURIComponent(id)}/log`));
    return;
  }
  // Live: the event stream sends every line from the first, then status changes.
  const es = new EventSource(`${API}/runs/${encodeURIComponent(id)}/events`, { withCredentials: true });
  let finished = false;
  const onStatus = (ev) => {
    try {
      run = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    if (!current()) return;
    draw();
    if (run.status !== 'running') {
      finished = true;
      status(`Run #${run.id} ${run.status}.`, run.status === 'succeeded' ? 'ok' : 'error');
    }
  };
  es.addEventListener('log', (ev) => {
    try {
      addLines([JSON.parse(ev.data)]);
    } catch (_) { /* a broken line */ }
  });
  es.addEventListener('status', onStatus);
  es.addEventListener('end', (ev) => {
    onStatus(ev);
    finished = true;
    es.close();
  });
  es.addEventListener('error', () => {
    // The server closes the stream when the run ends; do not let EventSource reconnect then.
    if (finished) es.close();
    else if (es.readyState === EventSource.CLOSED) {
      get(`/runs/${encodeURIComponent(id)}`).then((r) => { run = r; if (current()) draw(); }).catch(() => {});
    }
  });
  onCleanup(() => es.close());
}

// ---------------------------------------------------------------------------------------
// Settings (read-only)
// ---------------------------------------------------------------------------------------
function scalarText(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v === '' ? '""' : v;
  return JSON.stringify(v);
}

/** Values of run summaries read better with units: *bytes* as sizes, *_ms as durations. */
function summaryText(k, v) {
  if (typeof v === 'number' && /bytes/.test(k)) return `${fmtBytes(v)}${v >= 1024 ? ` (${v})` : ''}`;
  if (typeof v === 'number' && /_ms$/.test(k)) return fmtDuration(v);
  return scalarText(v);
}

/** A nested read-only definition list of a JSON object. */
function settingsList(obj, fmt) {
  const text = fmt || ((k, v) => scalarText(v));
  const dl = el('dl', { class: 'settings-dl' });
  for (const [k, v] of Object.entries(obj)) {
    dl.append(el('dt', null, k));
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      dl.append(el('dd', null, Object.keys(v).length ? settingsList(v, fmt) : '{}'));
    } else if (Array.isArray(v)) {
      if (v.every((x) => x === null || typeof x !== 'object')) dl.append(el('dd', null, v.length ? v.map(scalarText).join(', ') : '[]'));
      else dl.append(el('dd', null, v.map((x) => (x && typeof x === 'object' ? el('div', { class: 'settings-item' }, settingsList(x, fmt)) : el('div', null, scalarText(x))))));
    } else {
      dl.append(el('dd', null, text(k, v)));
    }
  }
  return dl;
}

async function renderSettings(root) {
  root.append(el('h1', null, 'Settings'));
  let s;
  try {
    s = await get('/settings');
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) {
      root.append(el('p', { class: 'card', role: 'alert' }, 'Only administrators can read the settings.'));
      return;
    }
    throw e;
  }
  root.append(el('p', { class: 'muted' }, 'The daemon\'s configuration (read-only; secrets are left out). Change it in the configuration file.'));
  if (s && typeof s === 'object' && !Array.isArray(s)) {
    const section = (title, body) => el('section', { class: 'card settings-section', 'aria-label': title },
      el('h2', { class: 'card-title' }, title), body);
    // Plain values first, then one card per table; a list of tables gets one card per item.
    const plain = Object.fromEntries(Object.entries(s).filter(([, v]) => v === null || typeof v !== 'object' ||
      (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object'))));
    if (Object.keys(plain).length) root.append(section('General', settingsList(plain)));
    for (const [k, v] of Object.entries(s)) {
      if (k in plain) continue;
      if (Array.isArray(v)) {
        v.forEach((item, i) => root.append(section(`[${k}.${(item && item.name) || i + 1}]`, settingsList(item))));
      } else {
        root.append(section(`[${k}]`, settingsList(v)));
      }
    }
  }
  root.append(el('details', null, el('summary', null, 'Raw JSON'),
    el('pre', { class: 'settings-pre', tabindex: '0' }, JSON.stringify(s, null, 2))));
}

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------
async function start() {
  applyTheme();
  $('#theme-toggle').addEventListener('click', () => {
    const next = document.documentElement.getAttribute('data-theme') === 'dark' ? 'light' : 'dark';
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch (_) { /* storage refused: the choice lasts for this page only */ }
    document.documentElement.setAttribute('data-theme', next);
    $('#theme-toggle').setAttribute('aria-pressed', next === 'dark' ? 'true' : 'false');
  });
  $('#login-form').addEventListener('submit', onLogin);
  $('#logout').addEventListener('click', onLogout);
  window.addEventListener('hashchange', route);
  try {
    session = await api('GET', '/session');
    showApp();
    route();
  } catch (e) {
    session = null;
    showLogin();
    if (!(e instanceof ApiError && e.status === 401)) status(errorText(e), 'error');
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
