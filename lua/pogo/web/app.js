// The cluster's live page (served by pogo.dashboard): one snapshot of the
// cluster arrives by server-sent events (/api/stream) at least every second
// while the page is open, and at once when a node comes or goes; each one
// redraws the nodes, links, ring, children per node and the timeline. The
// children themselves come a page at a time from /api/children, so the page
// never holds more rows than one page, whatever their number. It asks
// nothing of any other host.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const PALETTE = ['#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#14b8a6', '#ec4899', '#84cc16',
    '#f97316', '#6366f1', '#06b6d4', '#a855f7'];
  const PER_PAGE = 50;
  const state = { snap: null, sup: null, page: 1, node: '', q: '', childrenKey: '', childrenAt: 0, childrenStale: false, retries: 0,
    fetching: false, renders: 0, lastMessage: 0 };
  // lua-cjson writes an empty list as {}: read lists and maps defensively
  const arr = (x) => (Array.isArray(x) ? x : []);
  const obj = (x) => (x && typeof x === 'object' && !Array.isArray(x) ? x : {});

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }
  function bytes(n) {
    if (typeof n !== 'number') return '\u2013';
    if (n < 1024) return n.toFixed(0) + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1073741824) return (n / 1048576).toFixed(1) + ' MiB';
    return (n / 1073741824).toFixed(2) + ' GiB';
  }
  function rate(n) {
    if (typeof n !== 'number') return '\u2013';
    return n >= 100 ? n.toFixed(0) : n.toFixed(1);
  }
  function ms(n) { return typeof n === 'number' ? (n < 10 ? n.toFixed(2) : n.toFixed(0)) + ' ms' : '\u2013'; }
  function clock(t) { return typeof t === 'number' ? new Date(t).toLocaleTimeString() : '\u2013'; }
  function shortName(n) { return String(n).split('@')[0]; }
  function pct(x) { return typeof x === 'number' ? (x * 100).toFixed(1) + '%' : '\u2013'; }

  let colors = {};
  function assignColors(names) {
    const sorted = names.slice().sort();
    colors = {};
    sorted.forEach((n, i) => { colors[n] = PALETTE[i % PALETTE.length]; });
  }
  const swatch = (n) => '<span class="swatch" style="background:' + (colors[n] || '#999') + '"></span>';

  function currentSup(snap) {
    const sups = arr(snap.supervisors);
    let sup = sups.find((s) => s.scope === state.sup);
    if (!sup && sups.length) { sup = sups[0]; state.sup = sup.scope; state.page = 1; }
    return sup || null;
  }

  function renderNodes(nodes, sup) {
    const shares = sup ? obj(sup.shares) : {};
    const rows = nodes.map((n) => {
      if (n.error) {
        return '<tr data-node="' + esc(n.name) + '" data-state="error"><td class="name">' + swatch(n.name) + esc(n.name) +
          '</td><td colspan="10" class="err">no answer: ' + esc(n.error) + '</td></tr>';
      }
      const r = obj(n.rates), mem = obj(n.memory);
      return '<tr data-node="' + esc(n.name) + '" data-state="up"><td class="name" title="ring share ' + pct(shares[n.name]) + '">' +
        swatch(n.name) + esc(n.name) + '</td><td class="num">' + n.processes + '</td><td class="num">' + n.run_queue +
        '</td><td class="num">' + n.children + '</td><td class="num">' + bytes(mem.lua) + '</td><td class="num">' +
        bytes(mem.rss) + '</td><td class="num">' + rate(r.delivered) + '</td><td class="num">' + rate(r.messages_in) +
        '</td><td class="num">' + rate(r.messages_out) + '</td><td class="num">' + n.links + '</td><td class="num">' +
        ms(n.rtt_ms) + '</td></tr>';
    });
    $('nodes').innerHTML = rows.join('');
  }

  function svgText(x, y, s, cls, anchor) {
    return '<text x="' + x.toFixed(1) + '" y="' + y.toFixed(1) + '"' + (cls ? ' class="' + cls + '"' : '') +
      ' text-anchor="' + (anchor || 'middle') + '">' + esc(s) + '</text>';
  }

  function renderLinks(nodes, links) {
    const names = nodes.map((n) => n.name);
    const pos = {};
    const cx = 180, cy = 150, r = names.length > 1 ? 105 : 0;
    names.forEach((n, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, names.length);
      pos[n] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
    });
    let out = '';
    for (const l of links) {
      const a = pos[l.from], b = pos[l.to];
      if (!a || !b) continue;
      out += '<line x1="' + a[0].toFixed(1) + '" y1="' + a[1].toFixed(1) + '" x2="' + b[0].toFixed(1) + '" y2="' +
        b[1].toFixed(1) + '" stroke="#c7ced6" stroke-width="2"/>';
      if (typeof l.rtt_ms === 'number') out += svgText((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 - 3, ms(l.rtt_ms), 'rtt');
    }
    for (const n of nodes) {
      const p = pos[n.name];
      out += '<circle cx="' + p[0].toFixed(1) + '" cy="' + p[1].toFixed(1) + '" r="14" fill="' +
        (n.error ? '#fff' : colors[n.name]) + '" stroke="' + (n.error ? '#ef4444' : '#fff') + '" stroke-width="3"/>';
      out += svgText(p[0], p[1] + (p[1] >= cy ? 30 : -20), shortName(n.name));
    }
    if (!nodes.length) out = svgText(cx, cy, 'no node');
    $('links').innerHTML = out;
  }

  function arcPath(cx, cy, r0, r1, a0, a1) {
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const p = (r, a) => (cx + r * Math.cos(a)).toFixed(2) + ' ' + (cy + r * Math.sin(a)).toFixed(2);
    return 'M' + p(r1, a0) + ' A' + r1 + ' ' + r1 + ' 0 ' + large + ' 1 ' + p(r1, a1) + ' L' + p(r0, a1) +
      ' A' + r0 + ' ' + r0 + ' 0 ' + large + ' 0 ' + p(r0, a0) + ' Z';
  }

  function renderRing(sup) {
    const svg = $('ring');
    if (!sup) { svg.innerHTML = svgText(180, 150, 'no distributed supervisor'); $('ring-legend').innerHTML = ''; return; }
    const shares = obj(sup.shares);
    const names = Object.keys(shares).sort();
    let a = -Math.PI / 2, out = '';
    for (const n of names) {
      const s = shares[n];
      if (s >= 0.9999) {
        out += '<circle cx="180" cy="150" r="95" fill="none" stroke="' + colors[n] + '" stroke-width="40"/>';
      } else if (s > 0) {
        out += '<path d="' + arcPath(180, 150, 75, 115, a, a + 2 * Math.PI * s) + '" fill="' + (colors[n] || '#999') + '"/>';
      }
      a += 2 * Math.PI * s;
    }
    out += svgText(180, 146, String(sup.children)) + svgText(180, 162, 'children', 'rtt');
    svg.innerHTML = out;
    const per = obj(sup.per_node);
    $('ring-legend').innerHTML = names.map((n) => '<li>' + swatch(n) + esc(shortName(n)) + ' ' + pct(shares[n]) +
      ' \u00b7 ' + (per[n] || 0) + ((per[n] || 0) === 1 ? ' child' : ' children') + '</li>').join('');
  }

  function renderPerNode(sup) {
    const per = sup ? obj(sup.per_node) : {};
    const names = Object.keys(per).sort();
    const max = Math.max(1, ...names.map((n) => per[n]));
    $('per-node').innerHTML = names.map((n) => '<span>' + swatch(n) + esc(shortName(n)) + '</span><div class="bar" style="width:' +
      ((100 * per[n]) / max).toFixed(1) + '%;background:' + (colors[n] || '#999') + '"></div><span data-node-children="' +
      esc(n) + '">' + per[n] + '</span>').join('');
    $('children-sup').textContent = sup ? sup.name : '\u2013';
    $('children-total').textContent = sup ? sup.children : 0;
    const sel = $('filter-node');
    const want = [''].concat(names);
    if (sel.options.length !== want.length || want.some((n, i) => sel.options[i].value !== n)) {
      sel.innerHTML = want.map((n) => '<option value="' + esc(n) + '">' + (n ? esc(shortName(n)) : 'all') + '</option>').join('');
      sel.value = names.includes(state.node) ? state.node : '';
      if (sel.value !== state.node) { state.node = sel.value; state.page = 1; }
    }
  }

  function eventText(e) {
    if (e.kind === 'node_up') return esc(e.node) + ' connected';
    if (e.kind === 'node_down') return esc(e.node) + ' went down' + (e.detail ? ' (' + esc(e.detail) + ')' : '');
    if (e.kind === 'move') return esc(e.supervisor) + ' ' + esc(e.id) + ' moved ' + esc(e.detail || '');
    if (e.kind === 'restart') return esc(e.supervisor) + ' ' + esc(e.id) + ' restarted on ' + esc(shortName(e.node)) +
      (e.detail ? ': ' + esc(e.detail) : '');
    return esc(e.supervisor || '') + ' ' + esc(e.id || '') + ' ' + esc(e.kind) + ' on ' + esc(shortName(e.node || '')) +
      (e.detail ? ': ' + esc(e.detail) : '');
  }

  function renderEvents(events) {
    const list = events.slice(-100).reverse();
    $('events').innerHTML = list.length ? list.map((e) => '<li><time>' + clock(e.time) + '</time><span class="kind ' +
      esc(e.kind) + '">' + esc(e.kind.replace('_', ' ')) + '</span><span>' + eventText(e) + '</span></li>').join('')
      : '<li class="muted">nothing happened yet</li>';
  }

  function renderSupSelect(sups) {
    const sel = $('sup-select');
    // each supervisor by its scope (two may share a name), shown by its name
    const scopes = sups.map((s) => s.scope);
    if (sel.options.length !== scopes.length || scopes.some((n, i) => sel.options[i].value !== n)) {
      sel.innerHTML = sups.map((s) => '<option value="' + esc(s.scope) + '">' + esc(s.name) +
        (s.name !== s.scope ? ' (scope ' + esc(s.scope) + ')' : '') + '</option>').join('');
    }
    if (state.sup) sel.value = state.sup;
  }

  function renderChildren(r) {
    const rows = arr(r.entries).map((e) => '<tr data-child="' + esc(e.id) + '"><td>' + esc(e.id) + '</td><td>' + swatch(e.node) +
      esc(e.node) + '</td><td>' + esc(e.pid) + '</td></tr>');
    $('children').innerHTML = rows.join('');
    const pages = Math.max(1, Math.ceil(r.matched / PER_PAGE));
    $('page-info').textContent = 'page ' + state.page + ' of ' + pages + ' \u00b7 ' + r.matched + ' shown of ' + r.total;
    if (!state.childrenShown) { state.childrenShown = true; performance.mark('pogo-children-render'); }
    $('prev').disabled = state.page <= 1;
    $('next').disabled = state.page >= pages;
    state.pages = pages;
  }

  // Does a page of children agree with the snapshot's supervisor (the header):
  // the same total and the same count per node? Right after a node comes or
  // goes the list may be read from a view not yet up to date.
  function agrees(r, s) {
    if (!s) return true;
    if (r.total !== s.children) return false;
    const a = obj(r.per_node), b = obj(s.per_node);
    return Object.keys(a).concat(Object.keys(b)).every((n) => (a[n] || 0) === (b[n] || 0));
  }

  // The list is fetched again when what it shows changed (the supervisor, the
  // page, the filters, the header's counts), every 10 s, and, while it does
  // not agree with the header, every RETRY_MS up to RETRIES times.
  const RETRY_MS = 1000, RETRIES = 20;
  function fetchChildren(force) {
    const sup = state.sup;
    if (!sup || state.fetching) return;
    const s = arr(state.snap && state.snap.supervisors).find((x) => x.scope === sup);
    const key = [sup, state.page, state.node, state.q, s ? s.children + ':' + JSON.stringify(obj(s.per_node)) : ''].join('|');
    const now = Date.now();
    if (key !== state.childrenKey) state.retries = 0;
    const stale = state.childrenStale && state.retries < RETRIES && now - state.childrenAt >= RETRY_MS;
    if (!force && !stale && key === state.childrenKey && now - state.childrenAt < 10000) return;
    if (stale && key === state.childrenKey) state.retries += 1;
    state.fetching = true;
    const url = 'api/children?sup=' + encodeURIComponent(sup) + '&page=' + state.page + '&per_page=' + PER_PAGE +
      '&node=' + encodeURIComponent(state.node) + '&q=' + encodeURIComponent(state.q);
    fetch(url, { cache: 'no-store' }).then((res) => res.json()).then((r) => {
      state.childrenKey = key;
      state.childrenAt = Date.now();
      state.childrenStale = !(r && !r.error && agrees(r, s));
      if (r && !r.error) renderChildren(r);
    }).catch(() => {}).finally(() => { state.fetching = false; });
  }

  function render(snap) {
    state.snap = snap;
    state.renders += 1;
    state.lastMessage = Date.now();
    const nodes = arr(snap.nodes);
    assignColors(nodes.map((n) => n.name));
    const up = nodes.filter((n) => !n.error);
    const sups = arr(snap.supervisors);
    const sup = currentSup(snap);
    $('via').textContent = snap.via;
    $('updated').textContent = clock(snap.time);
    $('node-count').textContent = up.length;
    $('child-count').textContent = sups.reduce((a, s) => a + s.children, 0);
    $('process-count').textContent = up.reduce((a, n) => a + n.processes, 0);
    $('message-rate').textContent = rate(up.reduce((a, n) => a + (obj(n.rates).delivered || 0), 0));
    $('restart-count').textContent = sups.reduce((a, s) => a + s.restarts, 0);
    $('move-count').textContent = sups.reduce((a, s) => a + s.moves, 0);
    const obs = arr(snap.observers);
    $('observers').textContent = obs.length ? 'observers: ' + obs.join(', ') : '';
    renderNodes(nodes, sup);
    renderLinks(nodes, arr(snap.links));
    renderSupSelect(sups);
    renderRing(sup);
    renderPerNode(sup);
    renderEvents(arr(snap.events));
    fetchChildren(false);
    document.documentElement.dataset.renders = state.renders;
    if (state.renders === 1) performance.mark('pogo-first-render');
  }

  function setConn(s) { const c = $('conn'); c.dataset.state = s; c.textContent = s; }

  function connect() {
    if (!window.EventSource) { poll(); return; }
    const es = new EventSource('api/stream');
    es.onopen = () => setConn('live');
    es.onmessage = (e) => { setConn('live'); render(JSON.parse(e.data)); };
    es.onerror = () => setConn('reconnecting');
  }

  function poll() {
    fetch('api/cluster', { cache: 'no-store' }).then((r) => r.json()).then((s) => { setConn('live'); render(s); })
      .catch(() => setConn('reconnecting')).finally(() => setTimeout(poll, 1000));
  }

  $('sup-select').addEventListener('change', (e) => {
    state.sup = e.target.value; state.page = 1; state.node = ''; if (state.snap) render(state.snap); fetchChildren(true);
  });
  $('filter-node').addEventListener('change', (e) => { state.node = e.target.value; state.page = 1; fetchChildren(true); });
  let typing;
  $('filter-q').addEventListener('input', (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = e.target.value; state.page = 1; fetchChildren(true); }, 200);
  });
  $('children-filter').addEventListener('submit', (e) => e.preventDefault());
  $('prev').addEventListener('click', () => { if (state.page > 1) { state.page -= 1; fetchChildren(true); } });
  $('next').addEventListener('click', () => { if (state.page < (state.pages || 1)) { state.page += 1; fetchChildren(true); } });
  setInterval(() => {
    if (state.lastMessage && Date.now() - state.lastMessage > 3000) setConn('reconnecting');
    fetchChildren(false);
  }, 1000);
  window.pogoDashboard = state;
  connect();
}());
