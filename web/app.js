// Airlock review console: login, the live queue (SSE), decisions, history, session replay, grants, users.
// Every string that came from an agent is put on the page with textContent (never innerHTML), and
// invisible or direction-changing characters are shown as visible escapes.
'use strict';

const S = {
  csrf: '', me: null, pending: [], selected: 0, skew: 0, es: null, view: 'queue',
  replay: { timer: null, stmts: [], i: 0, id: null, next: null, t0: 0 },
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}

// Characters that hide or reorder text: controls, bidi overrides/isolates, zero-width, BOM, soft hyphen...
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff9-\ufffb]|\udb40[\udc00-\udc7f]/g;

// A fragment showing s exactly, with each invisible character as a marked escape like \u202E.
function visible(s) {
  const f = document.createDocumentFragment();
  s = s == null ? '' : String(s);
  let last = 0;
  for (const m of s.matchAll(INVISIBLE)) {
    if (m.index > last) f.append(document.createTextNode(s.slice(last, m.index)));
    const cp = m[0].codePointAt(0);
    const esc = el('span', { class: 'esc', title: 'invisible character U+' + cp.toString(16).toUpperCase() });
    esc.textContent = '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
    f.append(esc);
    last = m.index + m[0].length;
  }
  if (last < s.length) f.append(document.createTextNode(s.slice(last)));
  return f;
}

// SQL laid out for reading: a line break before each clause keyword outside
// quotes, comments and parentheses. Only whitespace changes; the exact text
// (what the sha256 covers) stays shown beside it.
const CLAUSES = /^(select|from|where|group\s+by|order\s+by|having|limit|offset|returning|set|values|on\s+conflict|union(\s+all)?|intersect|except|insert\s+into|update|delete\s+from|with|(left|right|full|inner|cross)(\s+outer)?\s+join|join)\b/i;
function formatSQL(s) {
  let out = '', depth = 0, i = 0;
  const lead = CLAUSES.exec(s);             // a clause keyword of several words is not broken up
  if (lead) { out = lead[0]; i = lead[0].length; }
  while (i < s.length) {
    const c = s[i];
    if (c === "'" || c === '"') {            // a string or quoted identifier, '' / "" escapes
      let j = i + 1;
      for (; j < s.length; j++) if (s[j] === c) { if (s[j + 1] === c) j++; else break; }
      out += s.slice(i, j + 1); i = j + 1; continue;
    }
    if (c === '-' && s[i + 1] === '-') { const j = s.indexOf('\n', i); const e = j < 0 ? s.length : j; out += s.slice(i, e); i = e; continue; }
    if (c === '/' && s[i + 1] === '*') { const j = s.indexOf('*/', i + 2); const e = j < 0 ? s.length : j + 2; out += s.slice(i, e); i = e; continue; }
    if (c === '$') {                         // $tag$ ... $tag$
      const m = /^\$[A-Za-z_]*\$/.exec(s.slice(i));
      if (m) { const j = s.indexOf(m[0], i + m[0].length); const e = j < 0 ? s.length : j + m[0].length; out += s.slice(i, e); i = e; continue; }
    }
    if (c === '(') depth++;
    if (c === ')') depth = Math.max(0, depth - 1);
    if (/\s/.test(c) && depth === 0) {
      let j = i; while (j < s.length && /\s/.test(s[j])) j++;
      const m = CLAUSES.exec(s.slice(j));
      out += (out.length && m) ? '\n' : s.slice(i, j);
      if (m) { out += m[0]; j += m[0].length; }
      i = j; continue;
    }
    out += c; i++;
  }
  return out;
}

function vis(tag, cls, s) {
  const e = el(tag, { class: cls || '' });
  e.append(visible(s));
  return e;
}

function dur(us) {
  let s = Math.max(0, Math.round(us / 1e6));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + 'm ' + s + 's';
  return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
}

function when(us) {
  return us ? new Date(us / 1000).toLocaleString() : '';
}

const nowUs = () => Date.now() * 1000 + S.skew;

function flash(msg, bad) {
  const f = $('flash');
  f.textContent = msg || '';
  f.className = 'flash' + (bad ? ' bad' : '');
}

// ---- API -----------------------------------------------------------------------------------

async function api(path, body) {
  const opt = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opt.method = 'POST';
    opt.headers['Content-Type'] = 'application/json';
    opt.headers['X-CSRF-Token'] = S.csrf;
    opt.body = JSON.stringify(body);
  }
  const r = await fetch('/api/v1' + path, opt);
  let j = {};
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (r.status === 401 && path !== '/login') { showLogin(); throw new Error('log in first'); }
  if (!r.ok) throw new Error(j.error || ('HTTP ' + r.status));
  if (j.now_us) S.skew = j.now_us - Date.now() * 1000;
  return j;
}

// ---- login ---------------------------------------------------------------------------------

function showLogin(msg) {
  if (S.es) { S.es.close(); S.es = null; }
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  document.title = 'Airlock review: log in';
  $('login-name').focus();
}

async function start(me) {
  S.me = me;
  if (me.csrf) S.csrf = me.csrf;
  $('login').hidden = true;
  $('app').hidden = false;
  $('me').textContent = me.user + (me.admin ? ' (admin)' : '');
  $('nav-users').hidden = !me.admin;
  connectFeed();
  route();
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    const j = await api('/login', { name: $('login-name').value, password: $('login-password').value });
    $('login-password').value = '';
    S.csrf = j.csrf;
    await start(await api('/me'));
  } catch (e) {
    $('login-error').textContent = e.message;
  }
});

$('logout').addEventListener('click', async () => {
  try { await api('/logout', {}); } catch (e) { /* gone anyway */ }
  S.csrf = '';
  showLogin('Logged out.');
});

// ---- live queue ----------------------------------------------------------------------------

function connectFeed() {
  if (S.es) S.es.close();
  const es = new EventSource('/api/v1/events');
  S.es = es;
  es.addEventListener('open', () => { $('live').textContent = 'live'; $('live').className = 'live on'; });
  es.addEventListener('error', () => {
    $('live').textContent = 'reconnecting'; $('live').className = 'live off';
    // A session that ended makes the feed fail: find out, and show the login if so.
    api('/me').catch(() => {});
  });
  es.addEventListener('pending', (ev) => {
    let d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    if (d.now_us) S.skew = d.now_us - Date.now() * 1000;
    setPending(d.pending || []);
  });
}

function setPending(rows) {
  const cur = S.pending[S.selected];
  rows.sort((a, b) => a.id - b.id);
  S.pending = rows;
  const keep = cur ? rows.findIndex((r) => r.id === cur.id) : -1;
  // The request under the cursor went (decided elsewhere, abandoned): select none rather than
  // its neighbour, so a key press meant for it cannot decide one the reviewer has not read.
  S.selected = keep >= 0 ? keep : cur ? -1 : Math.min(Math.max(S.selected, 0), Math.max(0, rows.length - 1));
  document.title = (rows.length ? '(' + rows.length + ') ' : '') + 'Airlock review';
  $('nav-count').textContent = String(rows.length);
  renderQueue();
}

function approvalsOf(r) {
  return (r.approvals || []).filter((a) => a.decision === 'approve');
}

function windows(maxS) {
  return [[300, '5 min'], [900, '15 min'], [3600, '1 hour'], [4 * 3600, '4 hours'], [86400, '1 day']]
    .filter(([s]) => s <= maxS).concat(maxS && ![300, 900, 3600, 14400, 86400].includes(maxS)
      ? [[maxS, dur(maxS * 1e6) + ' (max)']] : []);
}

function fact(dl, k, v, cls) {
  dl.append(el('dt', { text: k }));
  const dd = el('dd', { class: cls || '' });
  dd.append(v instanceof Node ? v : visible(v));
  dl.append(dd);
}

function renderQueue() {
  const q = $('queue');
  const focused = document.activeElement && document.activeElement.closest('#queue li');
  const focusId = focused ? focused.dataset.id : null;
  const drafts = {};
  for (const li of q.children) {
    drafts[li.dataset.id] = li.querySelector('.reason').value;
  }
  q.replaceChildren();
  $('queue-empty').hidden = S.pending.length > 0;
  S.pending.forEach((r, i) => {
    const li = el('li', { class: 'req' + (i === S.selected ? ' sel' : ''), 'data-id': String(r.id) });
    li.addEventListener('click', (ev) => { if (!ev.target.closest('button, input, select')) select(i); });
    const head = el('div', { class: 'req-head' },
      el('span', { class: 'rid', text: '#' + r.id }),
      el('span', { class: 'kind', text: r.kind || '?' }),
      el('span', { class: 'res' }, 'on ', vis('b', '', r.resource)),
      el('span', { class: 'appr', text: approvalsOf(r).length + ' of ' + (r.approvals_needed || 1) + ' approvals' }),
      el('span', { class: 'wait', 'data-created': String(r.created_us) }),
      el('span', { class: 'left', 'data-expires': String(r.expires_us) }));
    const cmd = vis('pre', 'cmd', r.command);
    const fold = el('div', { class: 'fold' }, cmd);
    if (r.protocol === 'postgres' && formatSQL(r.command || '') !== (r.command || '')) {
      // Formatted for reading on request; the exact command stays the default view.
      const fmt = vis('pre', 'cmd-fmt hidden', formatSQL(r.command || ''));
      fold.append(fmt, el('button', { type: 'button', class: 'link', text: 'format SQL',
        onclick: (ev) => {
          const on = fmt.classList.toggle('hidden');
          cmd.classList.toggle('hidden', !on);
          ev.target.textContent = on ? 'format SQL' : 'exact text';
        } }));
    }
    if ((r.command || '').length > 400 || (r.command || '').split('\n').length > 8) {
      fold.classList.add('folded');
      fold.append(el('button', { type: 'button', class: 'link', text: 'expand',
        onclick: (ev) => { fold.classList.toggle('folded'); ev.target.textContent = fold.classList.contains('folded') ? 'expand' : 'fold'; } }));
    }
    const dl = el('dl', { class: 'facts' });
    fact(dl, 'rule', r.rule);
    if (r.iface) {
      // An agent behind a pinned interface is that interface: the host knows no pid or uid of it.
      fact(dl, 'agent interface', r.iface);
    } else {
      fact(dl, 'agent cgroup', r.cgroup_path);
      fact(dl, 'exe', r.exe);
      fact(dl, 'pid / uid', (r.pid ?? '?') + ' / ' + (r.uid ?? '?') + (r.comm ? ' (' + r.comm + ')' : ''));
    }
    fact(dl, 'sha256', r.sha256, 'mono');
    if (r.conn_id) fact(dl, 'session', el('a', { href: '#/session/' + r.conn_id, text: 'connection ' + r.conn_id }));
    const by = approvalsOf(r).map((a) => a.reviewer + (a.reason ? ': ' + a.reason : '')).join('; ');
    if (by) fact(dl, 'approved by', by);
    const reason = el('input', { class: 'reason', placeholder: 'reason (required to deny)', maxlength: '1000' });
    reason.value = drafts[r.id] || '';
    const win = el('select', { class: 'window' });
    for (const [s, label] of windows(r.max_grant_s || 0)) win.append(el('option', { value: String(s), text: label }));
    const acts = el('div', { class: 'acts' },
      el('button', { type: 'button', class: 'approve', text: 'Approve once', onclick: () => decide(r, 'approve', reason.value, 0) }),
      r.max_grant_s ? win : null,
      r.max_grant_s ? el('button', { type: 'button', class: 'grant', text: 'Approve for window',
        onclick: () => decide(r, 'approve', reason.value, parseInt(win.value, 10)) }) : null,
      reason,
      el('button', { type: 'button', class: 'deny', text: 'Deny', onclick: () => decide(r, 'deny', reason.value, 0) }));
    li.append(head, fold, dl, acts);
    q.append(li);
  });
  if (focusId) {
    const li = q.querySelector('li[data-id="' + CSS.escape(focusId) + '"] .reason');
    if (li) li.focus();
  }
  tick();
}

function tick() {
  const now = nowUs();
  for (const e of document.querySelectorAll('#queue .wait')) e.textContent = 'waiting ' + dur(now - Number(e.dataset.created));
  for (const e of document.querySelectorAll('#queue .left')) {
    const left = Number(e.dataset.expires) - now;
    e.textContent = left > 0 ? dur(left) + ' left' : 'timing out';
    e.classList.toggle('urgent', left < 60e6);
  }
}
setInterval(tick, 1000);

function select(i) {
  if (!S.pending.length) return;
  S.selected = Math.max(0, Math.min(S.pending.length - 1, i));
  const lis = $('queue').children;
  for (let k = 0; k < lis.length; k++) lis[k].classList.toggle('sel', k === S.selected);
  if (lis[S.selected]) lis[S.selected].scrollIntoView({ block: 'nearest' });
}

async function decide(r, what, reason, forSecs) {
  reason = (reason || '').trim();
  if (what === 'deny' && !reason) {
    flash('A denial needs a reason: the agent sees it.', true);
    const li = $('queue').querySelector('li[data-id="' + r.id + '"] .reason');
    if (li) li.focus();
    return;
  }
  const body = { reason };
  if (forSecs) body.for_secs = forSecs;
  try {
    await api('/requests/' + r.id + '/' + what, body);
    flash('Request #' + r.id + (what === 'deny' ? ' denied' : forSecs ? ' approved for ' + dur(forSecs * 1e6) : ' approved') + '.');
  } catch (e) {
    flash('Request #' + r.id + ': ' + e.message, true);
  }
}

document.addEventListener('keydown', (ev) => {
  if (S.view !== 'queue' || $('app').hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t && t.closest && t.closest('input, textarea, select')) {
    if (ev.key === 'Escape') t.blur();
    return;
  }
  const r = S.selected >= 0 ? S.pending[S.selected] : undefined;
  if (ev.key === 'j') select(S.selected + 1);
  else if (ev.key === 'k') select(S.selected - 1);
  else if ((ev.key === 'a' || ev.key === 'd') && !r) flash('No request is selected: j/k selects one.', true);
  else if (ev.key === 'a') decide(r, 'approve', $('queue').children[S.selected].querySelector('.reason').value, 0);
  else if (ev.key === 'd') decide(r, 'deny', $('queue').children[S.selected].querySelector('.reason').value, 0);
  else return;
  ev.preventDefault();
});

// ---- tables --------------------------------------------------------------------------------

function table(id, cols, rows) {
  const t = $(id);
  const hr = el('tr');
  for (const [label] of cols) hr.append(el('th', { text: label }));
  t.tHead.replaceChildren(hr);
  const body = t.tBodies[0];
  body.replaceChildren();
  for (const row of rows) {
    const tr = el('tr');
    for (const [, f] of cols) {
      const v = f(row);
      const td = el('td');
      td.append(v instanceof Node ? v : visible(v == null ? '' : String(v)));
      tr.append(td);
    }
    body.append(tr);
  }
  if (!rows.length) body.append(el('tr', {}, el('td', { colspan: String(cols.length), class: 'empty', text: 'nothing' })));
}

const sessLink = (id) => (id ? el('a', { href: '#/session/' + id, text: String(id) }) : '');
const outcome = (s) => s.sqlstate ? s.sqlstate + ' ' + (s.error || '') : (s.tag || '');

async function loadHistory() {
  const p = new URLSearchParams();
  const what = $('h-what').value;
  p.set('what', what);
  for (const [k, id] of [['agent', 'h-agent'], ['resource', 'h-resource'], ['decision', 'h-decision'], ['since', 'h-since']]) {
    if ($(id).value) p.set(k, $(id).value);
  }
  // A search that matches little reads far back (in airlockd's reader thread): say so meanwhile.
  const body = $('history').tBodies[0];
  body.replaceChildren(el('tr', {}, el('td', { class: 'empty', text: 'searching…' })));
  try {
    const j = await api('/audit?' + p.toString());
    const rows = j[what] || [];
    if (what === 'statements') {
      table('history', [['time', (s) => when(s.at_us)], ['session', (s) => sessLink(s.conn_id)], ['agent', (s) => s.cgroup_path],
        ['resource', (s) => s.resource], ['kind', (s) => s.kind], ['statement', (s) => vis('code', 'cmd1', s.text)],
        ['decision', (s) => s.decision + (s.rule ? ' (' + s.rule + ')' : '')], ['outcome', outcome]], rows);
    } else if (what === 'requests') {
      table('history', [['#', (r) => r.id], ['created', (r) => when(r.created_us)], ['session', (r) => sessLink(r.conn_id)],
        ['agent', (r) => (r.iface ? 'iface ' + r.iface : r.cgroup_path)], ['resource', (r) => r.resource], ['command', (r) => vis('code', 'cmd1', r.command)],
        ['state', (r) => r.state], ['reason', (r) => r.reason]], rows);
    } else {
      table('history', [['session', (c) => sessLink(c.id)], ['opened', (c) => when(c.opened_us)], ['agent', (c) => c.cgroup_path || c.iface],
        ['exe', (c) => c.exe], ['destination', (c) => (c.dst_addr || '?') + ':' + (c.dst_port || '?')], ['resource', (c) => c.resource],
        ['bytes up/down', (c) => c.bytes_up + ' / ' + c.bytes_down], ['end', (c) => c.reason]], rows);
    }
  } catch (e) { body.replaceChildren(); flash(e.message, true); }
}
$('history-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadHistory(); });

// ---- session replay ------------------------------------------------------------------------

function stmtItem(s, t0) {
  if (s.http) return httpItem(s.http, t0);
  if (s.exec) return execItem(s.exec, t0);
  const li = el('li', { class: 'stmt ' + (s.decision || '') },
    el('span', { class: 'at', text: '+' + ((s.at_us - t0) / 1e6).toFixed(3) + 's' }),
    el('span', { class: 'dec', text: s.decision || '' }),
    vis('pre', 'cmd', s.text),
    el('span', { class: 'out' }, visible(outcome(s) + (s.rows >= 0 && s.rows != null ? ' · ' + s.rows + ' rows' : '') +
      (s.duration_us != null ? ' · ' + (s.duration_us / 1000).toFixed(1) + ' ms' : ''))));
  if (s.rule) li.append(vis('span', 'rule', 'rule: ' + s.rule));
  return li;
}

// An HTTP request of an https session.
function httpItem(h, t0) {
  const li = el('li', { class: 'stmt ' + (h.decision || '') },
    el('span', { class: 'at', text: '+' + ((h.at_us - t0) / 1e6).toFixed(3) + 's' }),
    el('span', { class: 'dec', text: h.decision || '' }),
    vis('pre', 'cmd', (h.method || '') + ' ' + (h.host || '') + (h.path || '') + (h.query ? '?' + h.query : '')),
    el('span', { class: 'out' }, visible((h.status ? String(h.status) : 'no answer') +
      (h.duration_us != null ? ' · ' + (h.duration_us / 1000).toFixed(1) + ' ms' : '') + (h.error ? ' · ' + h.error : ''))));
  if (h.rule) li.append(vis('span', 'rule', 'rule: ' + h.rule));
  return li;
}

function parseJSON(s) {
  try { const o = JSON.parse(s); return o && typeof o === 'object' ? o : null; } catch (e) { return null; }
}

// How an exec's error channel says it ended (a metav1.Status), as airlockctl replay says it.
function execStatus(data) {
  const o = parseJSON(data);
  if (!o) return 'error: ' + data;
  if (o.status === 'Success') return 'the command exited with code 0';
  const code = ((o.details || {}).causes || []).find((c) => c && c.reason === 'ExitCode');
  if (o.reason === 'NonZeroExitCode' && code) return 'the command exited with code ' + code.message;
  return 'error: ' + (typeof o.message === 'string' ? o.message : data);
}

// One row of a recorded Kubernetes exec/attach stream (userspace/net/k8s_rec.c): the command,
// what it printed, what was typed, how it ended. Its bytes are the agent's and the pod's: they
// are shown as text, every control character but newline and tab as a visible escape.
function execItem(r, t0) {
  let label = r.type, text = r.data, note = null;
  if (r.type === 'exec' || r.type === 'attach') {
    const o = parseJSON(r.data) || {};
    text = typeof o.command === 'string' ? o.command : r.data;
    note = [o.namespace, o.pod].filter((v) => typeof v === 'string').join('/') +
      (typeof o.container === 'string' && o.container ? ' container ' + o.container : '') +
      ' [' + (o.stream || '?') + (o.tty ? ', tty' : '') + ']';
  } else if (r.type === 'status') {
    label = 'exit';
    text = execStatus(r.data);
  } else if (r.type === 'close') {
    text = (r.dir === 'F' ? 'the agent' : 'the server') + ' closed ' + r.data;
  } else if (r.type === 'resize') {
    const o = parseJSON(r.data) || {};
    text = 'terminal ' + o.Width + 'x' + o.Height;
  } else if (r.type === 'data') {
    label = r.dir === 'F' ? 'data >' : 'data <';
  } else if (r.type === 'undecoded') {
    text = 'not decoded from here on (' + r.data + '); it was relayed as it was';
  } else if (r.type === 'truncated') {
    text = 'recording truncated here (' + r.data + ')';
  }
  const li = el('li', { class: 'stmt exec ' + r.type },
    el('span', { class: 'at', text: '+' + ((r.at_us - t0) / 1e6).toFixed(3) + 's' }),
    el('span', { class: 'dec', text: label }),
    vis('pre', 'cmd', text));
  if (note) li.append(vis('span', 'out', note));
  return li;
}

function stopReplay() {
  clearTimeout(S.replay.timer);
  S.replay.timer = null;
  $('s-play').textContent = 'Play';
}

function showAll() {
  const st = S.replay.stmts;
  $('s-stmts').replaceChildren(...st.map((s) => stmtItem(s, S.replay.t0)));
}

// One page of a session (GET /sessions/N, then ?after= its next) as timeline items: SQL
// statements, HTTP requests and an exec's stream, by time (stable: an exec's request comes before
// its stream). A page ends at the same time for all three, so pages follow on in time.
function pageItems(j) {
  return (j.statements || []).concat((j.http_requests || []).map((h) => ({ at_us: h.at_us, http: h })),
    (j.exec || []).map((r) => ({ at_us: r.at_us, exec: r }))).sort((a, b) => a.at_us - b.at_us);
}

function showCount() {
  const n = S.replay.stmts.length;
  $('s-count').textContent = n + (n === 1 ? ' item' : ' items') + (S.replay.next ? ' so far' : '');
  $('s-more').hidden = !S.replay.next;
}

function step() {
  const st = S.replay.stmts;
  const i = S.replay.i;
  if (i >= st.length) { stopReplay(); return; }
  const t0 = S.replay.t0;
  $('s-stmts').append(stmtItem(st[i], t0));
  $('s-clock').textContent = '+' + ((st[i].at_us - t0) / 1e6).toFixed(1) + 's';
  S.replay.i = i + 1;
  if (S.replay.i < st.length) {
    const gap = (st[S.replay.i].at_us - st[i].at_us) / 1000 / Number($('s-speed').value);
    S.replay.timer = setTimeout(step, Math.min(Math.max(gap, 0), 5000));
  } else stopReplay();
}

$('s-play').addEventListener('click', () => {
  if (S.replay.timer) { stopReplay(); return; }
  if (S.replay.i >= S.replay.stmts.length || S.replay.i === 0) { S.replay.i = 0; $('s-stmts').replaceChildren(); }
  $('s-play').textContent = 'Pause';
  step();
});

// The next page of the session shown: its items go after the ones there (a replay that is
// running plays them too when it gets there).
$('s-more').addEventListener('click', async () => {
  const id = S.replay.id, next = S.replay.next;
  if (!next) return;
  $('s-more').disabled = true;
  try {
    const j = await api('/sessions/' + id + '?after=' + encodeURIComponent(next));
    if (S.replay.id !== id || S.replay.next !== next) return;   // another session, or loaded already
    const items = pageItems(j);
    const shown = !S.replay.timer && (S.replay.i === 0 || S.replay.i >= S.replay.stmts.length);
    S.replay.stmts = S.replay.stmts.concat(items);
    S.replay.next = j.next || null;
    if (shown) {
      // Everything is on the page: the new items go there too, and Play starts from the first.
      $('s-stmts').append(...items.map((s) => stmtItem(s, S.replay.t0)));
      S.replay.i = 0;
    }
    showCount();
  } catch (e) { flash(e.message, true); } finally { $('s-more').disabled = false; }
});

async function loadSession(id) {
  stopReplay();
  $('s-id').textContent = '#' + id;
  // Nothing of the session shown before stays while this one loads.
  $('s-conn').replaceChildren();
  $('s-stmts').replaceChildren();
  $('s-clock').textContent = '';
  S.replay.stmts = [];
  S.replay.id = id;
  S.replay.next = null;
  showCount();
  $('s-count').textContent = 'loading…';
  try {
    const j = await api('/sessions/' + id);
    if (S.replay.id !== id) return;
    const c = j.connection || {};
    const dl = $('s-conn');
    dl.replaceChildren();
    fact(dl, 'agent', c.cgroup_path || c.iface || '');
    fact(dl, 'exe', c.exe);
    fact(dl, 'pid / uid', (c.pid ?? '?') + ' / ' + (c.uid ?? '?'));
    fact(dl, 'destination', (c.dst_addr || '?') + ':' + (c.dst_port || '?') + (c.resource ? ' (' + c.resource + ')' : ''));
    fact(dl, 'opened', when(c.opened_us));
    fact(dl, 'closed', c.closed_us ? when(c.closed_us) + ' (' + (c.reason || '') + ')' : 'open');
    S.replay.stmts = pageItems(j);
    S.replay.t0 = S.replay.stmts.length ? S.replay.stmts[0].at_us : 0;
    S.replay.next = j.next || null;
    S.replay.i = 0;
    showAll();
    showCount();
  } catch (e) { $('s-count').textContent = ''; flash(e.message, true); }
}

// ---- grants, users -------------------------------------------------------------------------

// Whom a grant covers: an interface's agent (name and index), or a cgroup's agent and its uid.
function grantAgent(g) {
  if (g.agent_iface) return 'iface ' + g.agent_iface + (g.agent_ifindex == null ? '' : ' (#' + g.agent_ifindex + ')');
  return (g.cgroup_path || '?') + (g.agent_uid == null ? '' : ' (uid ' + g.agent_uid + ')');
}

async function loadGrants() {
  try {
    const j = await api('/grants');
    const now = nowUs();
    table('grants', [['#', (g) => g.id], ['request', (g) => g.request_id], ['agent', grantAgent], ['resource', (g) => g.resource],
      ['fingerprint', (g) => vis('code', 'mono', g.fingerprint)], ['by', (g) => g.created_by], ['expires', (g) => when(g.expires_us)],
      ['state', (g) => (g.revoked_us ? 'revoked by ' + (g.revoked_by || '?') : g.expires_us <= now ? 'expired' : 'live')],
      ['', (g) => (!g.revoked_us && g.expires_us > now ? el('button', { type: 'button', class: 'deny', text: 'Revoke',
        onclick: async () => {
          try { await api('/grants/' + g.id + '/revoke', {}); flash('Grant ' + g.id + ' revoked.'); } catch (e) { flash(e.message, true); }
          loadGrants();
        } }) : '')]], j.grants || []);
  } catch (e) { flash(e.message, true); }
}

async function loadUsers() {
  try {
    const j = await api('/users');
    table('users', [['name', (u) => u.name], ['uid', (u) => u.uid], ['groups', (u) => u.groups], ['admin', (u) => (u.admin ? 'yes' : '')],
      ['console password', (u) => (u.has_password ? 'set' : '-')]], j.users || []);
  } catch (e) { flash(e.message, true); }
}

// ---- routing -------------------------------------------------------------------------------

function route() {
  if ($('app').hidden) return;
  const h = location.hash || '#/queue';
  const m = h.match(/^#\/(queue|history|grants|users|session)(?:\/(\d+))?$/);
  const view = m ? m[1] : 'queue';
  S.view = view;
  for (const v of ['queue', 'history', 'session', 'grants', 'users']) $('view-' + v).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('cur', a.dataset.view === view);
  if (view !== 'session') stopReplay();
  if (view === 'history') loadHistory();
  else if (view === 'grants') loadGrants();
  else if (view === 'users') loadUsers();
  else if (view === 'session' && m[2]) loadSession(m[2]);
}
window.addEventListener('hashchange', route);

api('/me').then(start).catch(() => showLogin());
