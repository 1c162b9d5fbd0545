// /live: a live-stream room (channel live:<room>, ?room= or "main").
// Bullet comments (弹幕) fly right to left across the stage in lanes. All
// bullets move at the same speed, so a lane is free again as soon as the
// previous bullet's tail has fully entered the stage (plus a gap): bullets
// in one lane never catch up with each other.
//
// Under a flood the page stays smooth and drops instead of freezing: at
// most MAX_ON_STAGE bullets fly at once, at most MAX_SPAWN_PER_FRAME start
// per animation frame, at most MAX_WAITING wait for a free lane, and a
// bullet that waited longer than MAX_WAIT_MS is dropped. Movement uses the
// Web Animations API on transform only (composited, no layout per frame).
// The viewer count is the presence count of the channel. The status line
// and the small helpers are DuplexUI's (ui.js).
//
// The server controls the flow of a flooded room: comments come in one
// tick frame per 100 ms, sampled fairly, with the room's count; the page
// shows "183 条/秒，显示 50 条" over the last second. One's own comments
// come at once and are marked (a border, and 已发送 once the server
// confirmed them); priority ones are gold. The density control shows
// fewer of the others, never one's own or priority ones.
(function () {
  'use strict';

  var MAX_ON_STAGE = 60;
  var MAX_WAITING = 40;
  var MAX_WAIT_MS = 3000;
  var MAX_SPAWN_PER_FRAME = 4;
  var MAX_RECENT = 50;
  var LANE_GAP_PX = 24;
  var PRESENCE_EVERY_MS = 3000;
  var RATE_WINDOW_MS = 1000;

  var $ = DuplexUI.byId;
  var stage = $('stage');
  var layer = $('bullets');
  var viewers = $('viewers');
  var droppedEl = $('dropped');
  var showBox = $('show-bullets');
  var form = $('send');
  var input = $('text');
  var notice = $('notice');
  var recent = $('recent');
  var flowEl = $('flow');
  var densityEl = $('density');

  var params = new URLSearchParams(location.search);
  var room = params.get('room') || 'main';
  if (!DuplexUI.isRoomName(room)) room = 'main';
  var channel = 'live:' + room;

  var name = Array.from((params.get('name') || DuplexUI.recall('duplex.name')).trim()).slice(0, 32).join('') ||
    ('观众' + String(Math.floor(1000 + Math.random() * 9000)));
  $('room-name').textContent = room;
  $('me').textContent = name;

  // ---- bullet engine ----

  var width = 0;          // stage size in px
  var laneHeight = 0;
  var lanes = [];         // per lane: time (ms) from which it is free
  var speed = 0;          // px per second, the same for every bullet
  var waiting = [];       // {text, mine, at}
  var onStage = 0;
  var dropped = 0;
  var pumpScheduled = false;

  function layout() {
    var rect = stage.getBoundingClientRect();
    width = rect.width;
    // One lane is as tall as a bullet, measured with a probe.
    var probe = document.createElement('div');
    probe.className = 'bullet';
    probe.style.visibility = 'hidden';
    probe.textContent = '弹幕';
    layer.appendChild(probe);
    laneHeight = probe.offsetHeight + 4 || 32;
    layer.removeChild(probe);
    var n = Math.max(3, Math.floor((rect.height - 8) / laneHeight));
    if (n !== lanes.length) {
      var old = lanes;
      lanes = [];
      for (var i = 0; i < n; i++) lanes.push(old[i] || 0);
    }
    // Crossing the stage takes about 7 s whatever its width.
    speed = Math.max(80, width / 7);
  }

  function noteDropped(n) {
    dropped += n;
    droppedEl.hidden = false;
    droppedEl.textContent = '弹幕太多，已略过 ' + dropped + ' 条';
  }

  function freeLane(now) {
    // The free lane nearest the top.
    for (var i = 0; i < lanes.length; i++) if (lanes[i] <= now) return i;
    return -1;
  }

  function launch(b, lane, now) {
    var div = document.createElement('div');
    div.className = 'bullet' + (b.mine ? ' mine' : '') + (b.priority ? ' priority' : '');
    div.textContent = b.text;
    div.style.top = (lane * laneHeight + 4) + 'px';
    div.style.transform = 'translateX(' + width + 'px)';
    layer.appendChild(div);
    var w = div.offsetWidth;
    var distance = width + w;
    var duration = distance / speed * 1000;
    lanes[lane] = now + (w + LANE_GAP_PX) / speed * 1000;
    onStage++;
    var done = false;
    function finish() {
      if (done) return;
      done = true;
      onStage--;
      if (div.parentNode) div.parentNode.removeChild(div);
      schedulePump();
    }
    if (div.animate) {
      var anim = div.animate(
        [{transform: 'translateX(' + width + 'px)'}, {transform: 'translateX(' + (-w) + 'px)'}],
        {duration: duration, easing: 'linear', fill: 'forwards'});
      anim.onfinish = finish;
      anim.oncancel = finish;
    } else {
      div.style.transition = 'transform ' + duration + 'ms linear';
      requestAnimationFrame(function () { div.style.transform = 'translateX(' + (-w) + 'px)'; });
      div.addEventListener('transitionend', finish);
    }
    // A safety net for hidden tabs, where animations may not finish.
    setTimeout(finish, duration + 1000);
  }

  function pump() {
    pumpScheduled = false;
    var now = performance.now();
    // Drop what waited too long: late comments are worse than none.
    var stale = 0;
    while (waiting.length && now - waiting[0].at > MAX_WAIT_MS) {
      waiting.shift();
      stale++;
    }
    if (stale) noteDropped(stale);
    var spawned = 0;
    while (waiting.length && onStage < MAX_ON_STAGE && spawned < MAX_SPAWN_PER_FRAME) {
      var lane = freeLane(now);
      if (lane < 0) break;
      launch(waiting.shift(), lane, now);
      spawned++;
    }
    if (waiting.length) schedulePump();
  }

  function schedulePump() {
    if (pumpScheduled) return;
    pumpScheduled = true;
    if (document.hidden) setTimeout(pump, 250);
    else requestAnimationFrame(pump);
  }

  function addBullet(text, mine, priority) {
    if (!showBox.checked) return;
    if (waiting.length >= MAX_WAITING) {
      // Keep the newest: drop the oldest waiting one (one's own never).
      var idx = 0;
      while (idx < waiting.length && waiting[idx].mine) idx++;
      if (idx >= waiting.length && !mine) { noteDropped(1); return; }
      if (idx < waiting.length) { waiting.splice(idx, 1); noteDropped(1); }
    }
    var b = {text: text, mine: mine, priority: priority, at: performance.now()};
    if (mine) waiting.unshift(b); else waiting.push(b);
    schedulePump();
  }

  var ownRecent = {}; // offset → the recent-list entry of one's own comment

  function addRecent(who, text, mine, offset) {
    var li = DuplexUI.el('li', mine ? 'mine' : '');
    li.appendChild(DuplexUI.el('span', 'who', who));
    li.appendChild(document.createTextNode(text));
    recent.insertBefore(li, recent.firstChild);
    while (recent.children.length > MAX_RECENT) recent.removeChild(recent.lastChild);
    if (mine && offset) ownRecent[offset] = li;
  }

  // markSent marks one's own comment as confirmed by the server.
  function markSent(offset) {
    var li = ownRecent[offset];
    if (!li) return;
    delete ownRecent[offset];
    if (!li.querySelector('.sent')) li.appendChild(DuplexUI.el('span', 'sent', '已发送'));
  }

  // ---- the room's counts, over the last second of ticks ----

  var ticks = []; // {at, total, shown}

  function showRate() {
    var now = performance.now();
    while (ticks.length && now - ticks[0].at > RATE_WINDOW_MS) ticks.shift();
    var total = 0;
    var shown = 0;
    for (var i = 0; i < ticks.length; i++) { total += ticks[i].total; shown += ticks[i].shown; }
    flowEl.hidden = false;
    flowEl.textContent = total + ' 条/秒，显示 ' + shown + ' 条';
  }
  setInterval(function () { if (!flowEl.hidden) showRate(); }, 500);

  // The density control: a share of the others' comments, evenly spread
  // (an accumulator, not chance, so 一半 is exactly every other one).
  var densityAcc = 0;
  function keepByDensity() {
    var d = parseFloat(densityEl.value) || 1;
    if (d >= 1) return true;
    densityAcc += d;
    if (densityAcc >= 1) { densityAcc -= 1; return true; }
    return false;
  }

  showBox.addEventListener('change', function () {
    if (!showBox.checked) {
      waiting = [];
      layer.textContent = '';
      onStage = 0;
      for (var i = 0; i < lanes.length; i++) lanes[i] = 0;
    }
  });
  window.addEventListener('resize', layout);
  layout();

  // ---- connection ----

  var dx = new Duplex({name: name});
  var presenceTimer = null;

  function refreshViewers() {
    clearTimeout(presenceTimer);
    if (dx.state !== Duplex.CONNECTED) return;
    dx.presence(channel).then(function (res) {
      viewers.textContent = res.count + ' 人在看';
    }, function () { /* try again later */ });
    presenceTimer = setTimeout(refreshViewers, PRESENCE_EVERY_MS);
  }

  DuplexUI.follow(dx);
  dx.on('connected', function (info) {
    if (info && info.name) $('me').textContent = info.name;
  });
  dx.on('disconnected', function () { clearTimeout(presenceTimer); });
  dx.on('subscribed', function (ev) { if (ev.channel === channel) refreshViewers(); });
  dx.on('publication', function (p) {
    if (p.channel !== channel) return;
    var text = DuplexUI.textOf(p.data).slice(0, 100);
    var mine = !!(p.info && dx.info && p.info.client === dx.info.client);
    if (!mine && !p.priority && !keepByDensity()) return;
    addBullet(text, mine, p.priority);
    addRecent((p.info && p.info.name) || '系统', text, mine, p.offset);
  });
  dx.on('tick', function (t) {
    if (t.channel !== channel) return;
    ticks.push({at: performance.now(), total: t.total, shown: t.shown});
    showRate();
    if (t.missed) {
      noteDropped(t.missed);
      notice.textContent = '网络较慢，略过了 ' + t.missed + ' 条弹幕';
    }
  });
  dx.on('missed', function (ev) {
    noteDropped(ev.missed);
    notice.textContent = '网络较慢，服务器略过了 ' + ev.missed + ' 条弹幕';
  });
  dx.on('error', function (err) { notice.textContent = '出错了：' + err.message; });

  dx.connect();
  // No history in live rooms: nothing to recover after a reconnect.
  dx.subscribe(channel, {recover: false}).then(null, function (err) {
    notice.textContent = '无法进入直播间：' + err.message;
  });

  var FAIL_TEXT = {
    rate_limited: '发送太快了，休息一下再发',
    limit_exceeded: '弹幕太长了',
    timeout: '发送超时，请检查网络',
    outbox_full: '离线待发的弹幕太多了',
    disconnected: '连接断开，弹幕可能未发出'
  };

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    notice.textContent = dx.state === Duplex.CONNECTED ? '' : '尚未连接，连接后自动发送';
    dx.publish(channel, {text: text}).then(function (pos) {
      notice.textContent = '';
      if (pos) markSent(pos.offset);
    }, function (err) {
      notice.textContent = '发送失败：' + (FAIL_TEXT[err.code] || err.message);
    });
  });
}());
