// /ticker: live stock and fund quotes (股票基金实时报价). The symbol list
// comes from the server in <body data-symbols> (JSON); each symbol has its
// own channel quote:<code>, subscribed with latest: 1 so the newest quote
// shows at once on load and after every reconnect. Red is up and green is
// down, the Chinese market's convention. The status line is DuplexUI's
// (ui.js). All data goes in via textContent.
(function () {
  'use strict';

  var FLASH_MS = 600;
  var $ = DuplexUI.byId;
  var rowsEl = $('rows');
  var notice = $('notice');
  var symbols = DuplexUI.dataJSON('symbols', []);
  var rows = {}; // code → {tr, price, change, percent, time, prevClose, last}

  function cell(tr, cls, text) {
    var td = DuplexUI.el('td', cls, text);
    tr.appendChild(td);
    return td;
  }

  symbols.forEach(function (s) {
    var tr = DuplexUI.el('tr');
    tr.setAttribute('data-code', s.code);
    cell(tr, 'code', s.code);
    cell(tr, 'name', s.name);
    rows[s.code] = {
      tr: tr, prevClose: s.prev_close, last: null,
      price: cell(tr, 'num price', '—'),
      change: cell(tr, 'num change', '—'),
      percent: cell(tr, 'num percent', '—'),
      time: cell(tr, 'num time', '—')
    };
    rowsEl.appendChild(tr);
  });

  function fixed(n) { return Number(n).toFixed(2); }
  function signed(n, suffix) { return (n > 0 ? '+' : '') + fixed(n) + (suffix || ''); }

  // show renders one quote; a quote that is not for a listed symbol, or
  // has no price, is ignored.
  function show(code, q) {
    var r = rows[code];
    if (!r || !q || typeof q.price !== 'number' || !isFinite(q.price)) return;
    var prev = typeof q.prev_close === 'number' && q.prev_close > 0 ? q.prev_close : r.prevClose;
    var change = typeof q.change === 'number' ? q.change : q.price - prev;
    var percent = typeof q.percent === 'number' ? q.percent : change / prev * 100;
    r.price.textContent = fixed(q.price);
    r.change.textContent = signed(change);
    r.percent.textContent = signed(percent, '%');
    var when = q.time ? Date.parse(q.time) : Date.now();
    r.time.textContent = DuplexUI.clock(isNaN(when) ? Date.now() : when, true);
    var dir = change > 0 ? 'up' : change < 0 ? 'down' : 'flat';
    var flash = r.last === null || q.price === r.last ? '' : q.price > r.last ? ' flash-up' : ' flash-down';
    r.tr.className = dir + flash;
    r.last = q.price;
    if (flash) {
      clearTimeout(r.flashTimer);
      r.flashTimer = setTimeout(function () { r.tr.className = dir; }, FLASH_MS);
    }
  }

  var dx = new Duplex({});
  DuplexUI.follow(dx);
  dx.connect();
  symbols.forEach(function (s) {
    var sub = dx.subscribe('quote:' + s.code, {latest: 1});
    sub.on('publication', function (p) { show(s.code, p.data); });
    sub.on('error', function (err) { notice.textContent = s.code + ' 订阅失败：' + err.message; });
  });

  var first = symbols[0] || {code: '600519', prev_close: 1700};
  var sample = {symbol: first.code, price: Number(fixed(first.prev_close * 1.01)), prev_close: first.prev_close,
    change: Number(fixed(first.prev_close * 0.01)), percent: 1, time: new Date().toISOString()};
  $('curl-quote').textContent = 'curl -X POST ' + location.origin + '/api/publish \\\n' +
    '  -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \\\n' +
    "  -d '" + JSON.stringify({channel: 'quote:' + first.code, data: sample}) + "'";
}());
