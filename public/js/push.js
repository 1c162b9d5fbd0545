// /push: notifications from push:<topic> (announcements, anyone may
// subscribe) and, once signed in with a token, from user:<id> (only that
// user may subscribe; only the server publishes to either). The token comes
// from ?token= or the token field and goes to the server in the connect
// command. The page also shows the curl commands that trigger the pushes
// and mint a token, built from location. All data goes in via textContent.
// The status line and the small helpers are DuplexUI's (ui.js).
(function () {
  'use strict';

  var MAX_NOTES = 100;

  var $ = DuplexUI.byId;
  var el = DuplexUI.el;
  var topicInput = $('topic');
  var tokenInput = $('token');
  var who = $('who');
  var subsEl = $('subs');
  var errorEl = $('error');
  var list = $('notifications');
  var empty = $('empty');
  var logoutBtn = $('logout');

  var params = new URLSearchParams(location.search);
  var topic = params.get('topic') || 'news';
  if (!DuplexUI.isRoomName(topic)) topic = 'news';
  var token = params.get('token') || '';
  topicInput.value = topic;
  tokenInput.value = token;

  var dx = null;
  var shown = {};        // "channel|epoch|offset" → true
  var userChannel = '';

  // ---- curl commands ----

  function shellQuote(s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; }

  function renderCommands() {
    var base = location.origin;
    var user = (dx && dx.info && dx.info.user) || '42';
    var auth = '\\\n  -H "Authorization: Bearer $API_KEY" \\\n  -H "Content-Type: application/json"';
    var news = 'push:' + topic;
    $('news-channel').textContent = news;
    $('curl-publish').textContent = 'curl -X POST ' + base + '/api/publish ' + auth + ' \\\n  -d ' +
      shellQuote(JSON.stringify({channel: news, data: {title: '系统公告', text: '今晚 22:00 维护，预计 10 分钟'}}));
    $('token-user').textContent = user;
    $('curl-token').textContent = 'curl -X POST ' + base + '/api/token ' + auth + ' \\\n  -d ' +
      shellQuote(JSON.stringify({user: user, name: '李旺'}));
    $('cli-token').textContent = 'duplex token --user ' + user;
    $('token-url').textContent = base + '/push?token=<token>';
    $('user-channel').textContent = 'user:' + user;
    $('curl-user').textContent = 'curl -X POST ' + base + '/api/publish ' + auth + ' \\\n  -d ' +
      shellQuote(JSON.stringify({channel: 'user:' + user, data: {title: '私信', text: '你的订单已发货'}}));
  }

  Array.prototype.forEach.call(document.querySelectorAll('button.copy'), function (b) {
    b.addEventListener('click', function () {
      var text = $(b.getAttribute('data-copy')).textContent;
      if (!navigator.clipboard) return;
      navigator.clipboard.writeText(text).then(function () {
        b.textContent = '已复制';
        setTimeout(function () { b.textContent = '复制'; }, 1500);
      }, function () { /* not allowed: select by hand */ });
    });
  });

  // ---- notifications ----

  function partsOf(data) {
    if (typeof data === 'string') return {title: '', body: data};
    if (data && typeof data === 'object' && !Array.isArray(data)) {
      var title = typeof data.title === 'string' ? data.title : '';
      var body = ['text', 'body', 'message'].map(function (k) { return data[k]; })
        .filter(function (v) { return typeof v === 'string'; })[0];
      if (title || body !== undefined) return {title: title, body: body || ''};
    }
    return {title: '', body: JSON.stringify(data)};
  }

  // addNote shows one publication once. Live ones go on top; history
  // loaded on entering goes below (older); history reloaded after a lost
  // gap goes on top in offset order, since it is what was missed.
  function addNote(channel, epoch, offset, data, where) {
    var key = channel + '|' + epoch + '|' + offset;
    if (shown[key]) return;
    shown[key] = true;
    var personal = channel.indexOf('user:') === 0;
    var li = el('li', 'note' + (personal ? ' personal' : '') + (where === 'old' ? ' old' : ''));
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'tag', (personal ? '私信 · ' : '公告 · ') + channel));
    meta.appendChild(el('time', '', where === 'old' ? '较早' : DuplexUI.clock(Date.now(), true)));
    li.appendChild(meta);
    var p = partsOf(data);
    if (p.title) li.appendChild(el('div', 'title', p.title));
    if (p.body) li.appendChild(el('div', 'body', p.body));
    if (where === 'old') list.appendChild(li);
    else list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_NOTES) list.removeChild(list.lastChild);
    empty.hidden = list.children.length > 0;
  }

  function loadHistory(channel, where) {
    dx.history(channel, {limit: 10}).then(function (res) {
      var pubs = res.publications || [];
      if (where === 'old') {
        for (var i = pubs.length - 1; i >= 0; i--) addNote(channel, res.epoch, pubs[i].offset, pubs[i].data, 'old');
      } else {
        for (var j = 0; j < pubs.length; j++) addNote(channel, res.epoch, pubs[j].offset, pubs[j].data, 'new');
      }
    }, function () { /* history is a bonus */ });
  }

  function renderSubs() {
    subsEl.textContent = dx ? '已订阅：' + dx.subscriptions().join('，') : '';
  }

  function subscribe(channel) {
    return dx.subscribe(channel).then(function () {
      renderSubs();
      loadHistory(channel, 'old');
    }, function (err) {
      errorEl.textContent = '无法订阅 ' + channel + '：' + err.message;
      renderSubs();
    });
  }

  // ---- connection ----

  function start() {
    if (dx) dx.close();
    userChannel = '';
    errorEl.textContent = '';
    dx = new Duplex(token ? {token: token} : {});
    DuplexUI.follow(dx);
    dx.on('connected', function (info) {
      if (info.user) {
        who.textContent = '已登录：用户 ' + info.user + (info.name ? '（' + info.name + '）' : '') + '，同时接收私信';
        logoutBtn.hidden = false;
        if (!userChannel) {
          userChannel = 'user:' + info.user;
          subscribe(userChannel);
        }
      } else {
        who.textContent = '访客（未登录）：只接收公告';
        logoutBtn.hidden = !token;
      }
      renderCommands();
    });
    dx.on('publication', function (p) { addNote(p.channel, p.epoch, p.offset, p.data, 'new'); });
    dx.on('reload', function (ev) { loadHistory(ev.channel, 'new'); });
    dx.on('error', function (err) {
      errorEl.textContent = (err.code === 'unauthorized' ? '令牌无效，已作为访客连接：' : '出错了：') + err.message;
    });
    dx.connect();
    subscribe('push:' + topic);
  }

  $('topic-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = topicInput.value.trim();
    if (!DuplexUI.isRoomName(t)) {
      errorEl.textContent = '主题只能包含英文字母、数字和 _ . @ -';
      return;
    }
    errorEl.textContent = '';
    if (t === topic) return;
    dx.unsubscribe('push:' + topic).then(renderSubs, renderSubs);
    topic = t;
    renderCommands();
    subscribe('push:' + topic);
  });

  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    token = tokenInput.value.trim();
    start();
  });

  logoutBtn.addEventListener('click', function () {
    token = '';
    tokenInput.value = '';
    start();
  });

  renderCommands();
  start();
}());
