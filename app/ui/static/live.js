// The dashboard's live event feed (F3): Server-Sent Events read with fetch().
//
// Each connection asks for a one-time ticket (POST, CSRF header), opens
// /api/events/stream?ticket=... and resumes after the last event it showed
// (Last-Event-ID header, which EventSource cannot set on a new connection).
// When the stream ends or fails it reconnects by itself with a new ticket,
// backing off from 1 s to 30 s. Sections marked data-refresh are re-read from
// the server (the same page, parsed, never executed) after relevant events.
'use strict';
(function () {
  const MC = window.MC;
  const feed = document.getElementById('live-feed');
  // a run page: the agent's output as it happens (conversation.output events)
  const output = document.getElementById('live-output');
  if ((!feed && !output) || !MC) return;
  const state = document.getElementById('live-state');
  const MAX_ITEMS = 50;
  const MAX_OUTPUT_CHARS = 200000;
  const KINDS = { text: '', tool: 'tool call', result: 'tool result', note: 'note' };
  let lastId = (feed || output).dataset.lastId || '';
  let failures = 0;
  let controller = null;
  let stopped = false;
  let refreshTimer = null;

  const LINKS = {
    agent: '/ui/agents/', mission: '/ui/missions/', task: '/ui/tasks/',
    conversation: '/ui/runs/', rule: '/ui/rules/',
  };

  function say(text) { if (state) state.textContent = text; }

  function summary(event) {
    const p = event.payload || {};
    const parts = [];
    for (const key of ['title', 'name', 'kind', 'status', 'reason']) {
      if (typeof p[key] === 'string' && p[key]) { parts.push(p[key].slice(0, 120)); break; }
    }
    if (p.from !== undefined && p.to !== undefined) parts.push(p.from + ' → ' + p.to);
    return parts.join(' · ');
  }

  function ours(event) {
    return output && event.subject_type === 'conversation' &&
      String(event.subject_id) === output.dataset.conversation;
  }

  function append(event) {
    const chunks = (event.payload && event.payload.chunks) || [];
    const empty = output.querySelector('.empty');
    if (empty) empty.remove();
    chunks.forEach(function (chunk) {
      const kind = Object.prototype.hasOwnProperty.call(KINDS, chunk.kind) ? chunk.kind : 'note';
      const piece = document.createElement('span');
      piece.className = 'out-' + kind;
      piece.textContent = kind === 'text' ? String(chunk.text) : '\n[' + KINDS[kind] + '] ' + String(chunk.text) + '\n';
      output.append(piece);
    });
    while (output.textContent.length > MAX_OUTPUT_CHARS && output.firstChild) output.firstChild.remove();
  }

  function show(event) {
    if (event.type === 'conversation.output') {
      if (ours(event)) append(event);
      return; // the dashboard's feed lists what happened, not every piece of output
    }
    if (!feed) {
      // the run ended: show its page as stored (transcript, figures)
      if (ours(event) && /^conversation\.(succeeded|failed|cancelled)$/.test(event.type)) {
        setTimeout(function () { window.location.reload(); }, 500);
      }
      return;
    }
    const item = document.createElement('li');
    item.className = 'fresh';
    item.dataset.eventId = String(event.id);
    const time = document.createElement('time');
    time.dateTime = event.created_at;
    time.textContent = (event.created_at || '').slice(11, 19);
    const type = document.createElement('span');
    type.className = 'ev-type';
    type.textContent = event.type;
    item.append(time, ' ', type, ' ');
    const base = LINKS[event.subject_type];
    if (base && event.subject_id !== null && event.subject_id !== undefined) {
      const link = document.createElement('a');
      link.href = base + encodeURIComponent(event.subject_id);
      link.textContent = event.subject_type + ' ' + event.subject_id;
      item.append(link);
    } else {
      item.append(event.subject_type + (event.subject_id != null ? ' ' + event.subject_id : ''));
    }
    const text = summary(event);
    if (text) {
      const span = document.createElement('span');
      span.textContent = text;
      item.append(' ', span);
    }
    const who = document.createElement('span');
    who.className = 'hint';
    who.textContent = 'by ' + event.actor;
    item.append(' ', who);
    const empty = feed.querySelector('.empty');
    if (empty) empty.remove();
    feed.prepend(item);
    while (feed.children.length > MAX_ITEMS) feed.lastElementChild.remove();
    if (/^(conversation|task|escalation|agent|mission)\./.test(event.type)) scheduleRefresh();
  }

  // Re-read the page and swap the sections that summarise live state.
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(async function () {
      refreshTimer = null;
      try {
        const response = await fetch(window.location.pathname, {
          headers: { Accept: 'text/html' }, credentials: 'same-origin', cache: 'no-store',
        });
        if (!response.ok) return;
        const doc = new DOMParser().parseFromString(await response.text(), 'text/html');
        document.querySelectorAll('[data-refresh]').forEach(function (section) {
          const fresh = doc.getElementById(section.id);
          if (fresh) section.replaceWith(document.importNode(fresh, true));
        });
      } catch (err) {
        // the next event tries again
      }
    }, 1500);
  }

  function handle(block) {
    let id = null;
    let type = 'message';
    const data = [];
    block.split('\n').forEach(function (line) {
      if (!line || line.charAt(0) === ':') return;
      const at = line.indexOf(':');
      const field = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    });
    if (type === 'stream.closed') {
      let reason = '';
      try { reason = JSON.parse(data.join('\n')).reason; } catch (err) { reason = ''; }
      return reason || 'closed';
    }
    if (!data.length) return null;
    if (id) lastId = id;
    try { show(JSON.parse(data.join('\n'))); } catch (err) { /* a malformed event is skipped */ }
    return null;
  }

  async function connect() {
    if (stopped) return;
    say(failures ? 'Reconnecting…' : 'Connecting…');
    controller = new AbortController();
    let ended = 'ended';
    try {
      const ticket = await MC.api('POST', '/api/events/ticket');
      const headers = { Accept: 'text/event-stream' };
      if (lastId) headers['Last-Event-ID'] = lastId;
      const response = await fetch('/api/events/stream?ticket=' + encodeURIComponent(ticket.ticket), {
        headers: headers, credentials: 'same-origin', cache: 'no-store', signal: controller.signal,
      });
      if (!response.ok || !response.body) throw new MC.ApiError(response.status, null);
      failures = 0;
      say(feed ? 'Live: new events appear at the top.' : 'Live: the agent\'s output appears as it happens.');
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const closed = handle(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (closed) { ended = closed; break; }
        }
        if (ended !== 'ended') { controller.abort(); break; }
      }
    } catch (err) {
      if (stopped) return;
      if (err instanceof MC.ApiError && err.status === 401) ended = 'session_ended';
      else ended = 'error';
    }
    if (stopped) return;
    if (ended === 'session_ended' || ended === 'credential_revoked') {
      say('Your session has ended; the live feed stopped. Log in again to resume.');
      return;
    }
    failures += 1;
    const delay = Math.min(30000, 1000 * Math.pow(2, Math.min(failures - 1, 5))) + Math.random() * 500;
    say('Disconnected; reconnecting in ' + Math.round(delay / 1000) + ' s.');
    setTimeout(connect, delay);
  }

  window.addEventListener('pagehide', function () {
    stopped = true;
    if (controller) controller.abort();
  });
  window.addEventListener('pageshow', function (event) {
    if (event.persisted && stopped) { // back from the browser's page cache
      stopped = false;
      failures = 0;
      connect();
    }
  });
  connect();
})();
