// /scores: the live sports score board (体育实况). The match list comes
// from the server in <body data-matches> (JSON); each match has its own
// channel score:<match id>, subscribed with latest: 1 so the newest score
// shows at once on load and after every reconnect. A side whose score
// went up flashes for a moment. The status line is DuplexUI's (ui.js).
// All data goes in via textContent.
(function () {
  'use strict';

  var SCORED_MS = 2000; // how long a goal or point stays highlighted
  var STATUS_TEXT = {scheduled: '未开始', live: '进行中', finished: '已结束'};
  var $ = DuplexUI.byId;
  var rowsEl = $('rows');
  var notice = $('notice');
  var matches = DuplexUI.dataJSON('matches', []);
  var rows = {}; // match id → {tr, home, away, period, state, time, last}

  function cell(tr, cls, text) {
    var td = DuplexUI.el('td', cls, text);
    tr.appendChild(td);
    return td;
  }

  matches.forEach(function (m) {
    var tr = DuplexUI.el('tr', 'scheduled');
    tr.setAttribute('data-match', m.id);
    cell(tr, 'league', m.league);
    cell(tr, 'team home', m.home);
    var score = cell(tr, 'score');
    var home = DuplexUI.el('span', 'home-score', '—');
    var away = DuplexUI.el('span', 'away-score', '—');
    score.appendChild(home);
    score.appendChild(document.createTextNode(' : '));
    score.appendChild(away);
    cell(tr, 'team away', m.away);
    rows[m.id] = {
      tr: tr, home: home, away: away, last: null,
      period: cell(tr, 'period', '—'),
      state: cell(tr, 'state', '—'),
      time: cell(tr, 'num time', '—')
    };
    rowsEl.appendChild(tr);
  });

  function isCount(n) { return typeof n === 'number' && isFinite(n) && n >= 0 && Math.floor(n) === n; }

  // flash highlights a side's score for SCORED_MS.
  function flash(r, side) {
    var span = r[side];
    span.classList.add('scored');
    clearTimeout(r[side + 'Timer']);
    r[side + 'Timer'] = setTimeout(function () { span.classList.remove('scored'); }, SCORED_MS);
  }

  // show renders one score; a score that is not for a listed match, or
  // has no valid numbers, is ignored.
  function show(id, s) {
    var r = rows[id];
    if (!r || !s || !isCount(s.home) || !isCount(s.away)) return;
    r.home.textContent = String(s.home);
    r.away.textContent = String(s.away);
    var where = typeof s.period === 'string' ? s.period : '';
    if (isCount(s.minute) && s.minute > 0) where += (where ? ' ' : '') + s.minute + '′';
    r.period.textContent = where || '—';
    var status = STATUS_TEXT.hasOwnProperty(s.status) ? s.status : '';
    r.state.textContent = status ? STATUS_TEXT[status] : '—';
    r.tr.className = status;
    var when = s.time ? Date.parse(s.time) : Date.now();
    r.time.textContent = DuplexUI.clock(isNaN(when) ? Date.now() : when, true);
    if (r.last) {
      if (s.home > r.last.home) flash(r, 'home');
      if (s.away > r.last.away) flash(r, 'away');
    }
    r.last = {home: s.home, away: s.away};
  }

  var dx = new Duplex({});
  DuplexUI.follow(dx);
  dx.connect();
  matches.forEach(function (m) {
    var sub = dx.subscribe('score:' + m.id, {latest: 1});
    sub.on('publication', function (p) { show(m.id, p.data); });
    sub.on('error', function (err) { notice.textContent = m.home + ' vs ' + m.away + ' 订阅失败：' + err.message; });
  });

  var first = matches[0] || {id: 'csl-1'};
  var sample = {match: first.id, home: 1, away: 0, status: 'live', period: '下半场', minute: 67, time: new Date().toISOString()};
  $('curl-score').textContent = 'curl -X POST ' + location.origin + '/api/publish \\\n' +
    '  -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \\\n' +
    "  -d '" + JSON.stringify({channel: 'score:' + first.id, data: sample}) + "'";
}());
