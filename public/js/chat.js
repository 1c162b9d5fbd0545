// /chat: pick a nickname and a room (channel chat:<room>), then see the
// room's history, live messages, who is online, and joins and leaves.
// After a reconnect the client recovers missed messages; when it cannot
// (the server restarted and lost its memory), the page reloads history and
// merges it: every message is keyed by epoch:offset, so none shows twice.
// All user text goes into the page with textContent. The status line and
// the small helpers are DuplexUI's (ui.js).
(function () {
  'use strict';

  var MAX_MESSAGES = 500;

  var $ = DuplexUI.byId;
  var el = DuplexUI.el;
  var clock = DuplexUI.clock;
  var textOf = DuplexUI.textOf;
  var joinForm = $('join');
  var nameInput = $('name');
  var roomInput = $('room');
  var joinError = $('join-error');
  var roomView = $('room-view');
  var roomTitle = $('room-title');
  var messages = $('messages');
  var sendForm = $('send');
  var textInput = $('text');
  var sendError = $('send-error');
  var online = $('online');
  var onlineCount = $('online-count');

  var dx = null;
  var channel = '';
  var members = {};        // client id → info
  // countOnly: the room is past the size the server sends joins and
  // leaves for; it sends the count alone (presence_count), so members is
  // stale and count is what the page shows.
  var countOnly = false;
  var count = 0;
  var renderDue = false;
  var byKey = {};          // "epoch:offset" → li
  var entered = false;

  // ---- the message list ----

  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  function keepBottom(wasNear) {
    if (wasNear) messages.scrollTop = messages.scrollHeight;
  }

  function trim() {
    while (messages.children.length > MAX_MESSAGES) {
      var first = messages.firstElementChild;
      if (first.dataset.key) delete byKey[first.dataset.key];
      messages.removeChild(first);
    }
  }

  // ---- messages ----

  function fillMessage(li, data, info, mine) {
    li.textContent = '';
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'who', info && info.name ? info.name : '系统'));
    var t = el('time', '', clock(data && data.ts));
    meta.appendChild(t);
    li.appendChild(meta);
    li.appendChild(el('div', 'text', textOf(data)));
    li.className = 'msg' + (mine ? ' mine' : '');
  }

  function isMine(info) {
    return !!(info && dx && dx.info && info.client === dx.info.client);
  }

  // addMessage inserts one publication in offset order among the messages
  // of its epoch, unless it is shown already. A newer epoch (after a
  // server restart) goes after everything of the older one.
  function addMessage(epoch, offset, data, info) {
    var key = epoch + ':' + offset;
    if (byKey[key]) return;
    var wasNear = nearBottom();
    var li = el('li');
    fillMessage(li, data, info, isMine(info));
    li.dataset.key = key;
    li.dataset.epoch = epoch;
    li.dataset.offset = String(offset);
    byKey[key] = li;
    var before = null;
    for (var n = messages.lastElementChild; n; n = n.previousElementSibling) {
      if (!n.dataset.key) continue; // system lines and pending messages
      if (n.dataset.epoch !== epoch) break;
      if (Number(n.dataset.offset) > offset) before = n;
      else break;
    }
    messages.insertBefore(li, before);
    trim();
    keepBottom(wasNear);
  }

  function addSystem(text) {
    var wasNear = nearBottom();
    messages.appendChild(el('li', 'sys', text));
    trim();
    keepBottom(wasNear);
  }

  function loadHistory() {
    var ch = channel;
    return dx.history(ch, {limit: 100}).then(function (res) {
      if (ch !== channel) return;
      var pubs = res.publications || [];
      for (var i = 0; i < pubs.length; i++) {
        addMessage(res.epoch, pubs[i].offset, pubs[i].data, pubs[i].info);
      }
    }, function (err) {
      if (ch === channel) addSystem('加载历史消息失败：' + err.message);
    });
  }

  // ---- presence ----

  // scheduleRender redraws the member list once for a batch of joins and
  // leaves (one frame of the server's brings a tick's worth).
  function scheduleRender() {
    if (renderDue) return;
    renderDue = true;
    setTimeout(function () { renderDue = false; renderMembers(); }, 0);
  }

  function renderMembers() {
    if (countOnly) {
      // The names would be stale: show the count the server sends.
      online.textContent = '';
      online.appendChild(el('li', 'note', '人数较多，只显示人数'));
      onlineCount.textContent = String(count);
      return;
    }
    var list = [];
    for (var id in members) list.push(members[id]);
    list.sort(function (a, b) { return (a.name || '').localeCompare(b.name || '', 'zh-CN'); });
    online.textContent = '';
    for (var i = 0; i < list.length; i++) {
      var me = dx && dx.info && list[i].client === dx.info.client;
      var li = el('li', me ? 'me' : '', (list[i].name || '匿名') + (me ? '（我）' : ''));
      online.appendChild(li);
    }
    onlineCount.textContent = String(list.length);
  }

  function loadPresence() {
    var ch = channel;
    dx.presence(ch).then(function (res) {
      if (ch !== channel) return;
      count = res.count || 0;
      members = {};
      var clients = res.clients || {};
      for (var id in clients) members[id] = clients[id];
      renderMembers();
    }, function () { /* the next reconnect tries again */ });
  }

  // ---- connection ----

  function enter(name, room) {
    channel = 'chat:' + room;
    members = {};
    countOnly = false;
    count = 0;
    byKey = {};
    messages.textContent = '';
    roomTitle.textContent = '房间 ' + room;
    document.title = room + ' · 聊天室 · duplex';
    joinForm.hidden = true;
    roomView.hidden = false;
    entered = true;

    dx = new Duplex({name: name});
    // Chat also says why, in words: a server restart or a network
    // failure tells people whether to wait or to check their side.
    DuplexUI.follow(dx, {explain: true});
    dx.on('subscribed', function (ev) {
      if (ev.channel !== channel) return;
      if (ev.resubscribed) {
        if (ev.recovered === true && ev.result.publications && ev.result.publications.length) {
          addSystem('已重新连接，补上了 ' + ev.result.publications.length + ' 条消息');
        }
        loadPresence();
      }
    });
    dx.on('reload', function (ev) {
      if (ev.channel !== channel) return;
      addSystem('已重新连接，正在重新加载历史消息');
      loadHistory();
    });
    dx.on('publication', function (p) {
      if (p.channel === channel) addMessage(p.epoch, p.offset, p.data, p.info);
    });
    // Joins and leaves after a stretch of counts: the room is small again,
    // and the list missed what happened meanwhile.
    function leaveCountOnly() {
      if (!countOnly) return;
      countOnly = false;
      loadPresence();
    }
    dx.on('join', function (ev) {
      if (ev.channel !== channel) return;
      leaveCountOnly();
      var known = !!members[ev.info.client];
      members[ev.info.client] = ev.info;
      scheduleRender();
      if (!known && !isMine(ev.info)) addSystem((ev.info.name || '有人') + ' 进入了房间');
    });
    dx.on('leave', function (ev) {
      if (ev.channel !== channel) return;
      leaveCountOnly();
      var known = !!members[ev.info.client];
      delete members[ev.info.client];
      scheduleRender();
      if (known) addSystem((ev.info.name || '有人') + ' 离开了房间');
    });
    dx.on('presence_count', function (ev) {
      if (ev.channel !== channel) return;
      countOnly = true;
      count = ev.count;
      scheduleRender();
    });
    dx.on('error', function (err) {
      if (err.code === 'bad_request' && !dx.info) {
        sendError.textContent = '昵称不可用：' + err.message;
      } else {
        sendError.textContent = '出错了：' + err.message;
      }
    });

    dx.connect();
    dx.subscribe(channel).then(function () {
      loadHistory();
      loadPresence();
      textInput.focus();
    }, function (err) {
      leave();
      joinError.textContent = '无法进入房间：' + err.message + '（' + err.code + '）';
    });
  }

  function leave() {
    if (dx) dx.close();
    dx = null;
    channel = '';
    entered = false;
    roomView.hidden = true;
    joinForm.hidden = false;
    DuplexUI.status.show('尚未进入房间', 'connecting');
    document.title = '聊天室 · duplex';
  }

  var FAIL_TEXT = {
    rate_limited: '发送太快了，请稍候再试',
    limit_exceeded: '消息太长了',
    timeout: '发送超时，请检查网络',
    outbox_full: '离线时待发的消息太多了',
    disconnected: '发送时连接断开了，消息可能未送达',
    forbidden: '不允许在这里发言'
  };

  function send(text) {
    var li = el('li');
    var data = {text: text, ts: Date.now()};
    fillMessage(li, data, dx.info || {name: nameInput.value}, true);
    li.className += ' pending';
    var state = el('span', 'state', dx.state === Duplex.CONNECTED ? '' : '（等待连接后发送）');
    li.appendChild(state);
    messages.appendChild(li);
    keepBottom(true);
    var ch = channel;
    // Sent while the connection is down, it waits in the client's outbox
    // for as long as the longest reconnect delay.
    dx.publish(ch, data, {timeout: 25000}).then(function (res) {
      if (ch !== channel) return;
      var key = res.epoch + ':' + res.offset;
      if (byKey[key]) {
        // The push (or a recovery) showed it already.
        if (li.parentNode) li.parentNode.removeChild(li);
        return;
      }
      li.classList.remove('pending');
      li.removeChild(state);
      li.dataset.key = key;
      li.dataset.epoch = res.epoch;
      li.dataset.offset = String(res.offset);
      byKey[key] = li;
    }, function (err) {
      li.classList.remove('pending');
      li.classList.add('failed');
      state.textContent = '（发送失败：' + (FAIL_TEXT[err.code] || err.message) + '）';
    });
  }

  // ---- forms ----

  joinForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var name = nameInput.value.trim();
    var room = roomInput.value.trim() || 'lobby';
    joinError.textContent = '';
    if (!name) {
      joinError.textContent = '请先输入昵称';
      nameInput.focus();
      return;
    }
    if (Array.from(name).length > 32) {
      joinError.textContent = '昵称最多 32 个字';
      return;
    }
    if (!DuplexUI.isRoomName(room)) {
      joinError.textContent = '房间名只能包含英文字母、数字和 _ . @ -（最多 64 个字符）';
      roomInput.focus();
      return;
    }
    DuplexUI.remember('duplex.name', name);
    try {
      history.replaceState(null, '', location.pathname + '?room=' + encodeURIComponent(room));
    } catch (e) { /* not important */ }
    enter(name, room);
  });

  sendForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!entered) return;
    var text = textInput.value.trim();
    if (!text) return;
    sendError.textContent = '';
    textInput.value = '';
    send(text);
  });

  $('leave').addEventListener('click', leave);

  var params = new URLSearchParams(location.search);
  nameInput.value = params.get('name') || DuplexUI.recall('duplex.name');
  if (params.get('room')) roomInput.value = params.get('room');
  (nameInput.value ? roomInput : nameInput).focus();
}());
