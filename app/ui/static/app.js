// Mission Control UI: the shared behaviour of every logged-in page.
//
// * MC.api(): fetch against the JSON API, always with the session's CSRF token
//   (from the <meta> tag the server rendered) on state changes.
// * <form data-api="/api/..." data-method="POST">: the form's named fields are
//   sent as JSON; errors come back next to their fields (pre-flight checks,
//   validation, bounds) or in the form's alert box.
// * data-confirm="...": a destructive action asks first, in a <dialog>.
// * data-add-row / data-remove-row: repeatable rows (mission steps, rule parts).
// No inline script, no eval, no markup built from strings: text goes in as text.
'use strict';
(function () {
  const MC = (window.MC = window.MC || {});
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.getAttribute('content') : '';

  document.addEventListener('securitypolicyviolation', function (e) {
    console.error('CSP violation: ' + e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
  });

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || 'request failed');
      this.status = status;
      this.code = error.code || 'error';
      this.details = error.details;
    }
  }
  MC.ApiError = ApiError;

  MC.api = async function (method, url, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
    const init = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, { error: { code: 'network', message: 'network error' } });
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  };

  // Plain words for a refused request.
  MC.describe = function (err) {
    if (!(err instanceof ApiError)) return 'Something went wrong in the page. Reload it and try again.';
    switch (err.status) {
      case 0: return 'The server could not be reached. Check the VPN connection and try again.';
      case 401: return 'Your session has ended. Log in again to continue.';
      case 403:
        if (err.code === 'csrf_failed') return 'This page is out of date. Reload it and try again.';
        if (err.code === 'insufficient_scope') return 'Refused: ' + err.message + '. Ask an admin.';
        return 'Refused: ' + err.message + '.';
      case 404: return 'It no longer exists: ' + err.message + '.';
      case 409: return err.message + '. Reload the page to see the latest state.';
      case 413: return 'That is too large to send.';
      case 429: return 'Too many requests. Wait a moment and try again.';
      case 422:
        if (Array.isArray(err.details) && err.details.length) {
          return 'Not saved: ' + (err.details.length === 1 ? 'one thing needs a change.' :
            err.details.length + ' things need a change.');
        }
        return sentence(err.message);
      default:
        if (err.status >= 500) return 'The server could not complete the request. Try again later.';
        return sentence(err.message);
    }
  };

  // --- confirmation -------------------------------------------------------------------
  MC.confirm = function (message, label) {
    const dialog = document.getElementById('confirm-dialog');
    if (!dialog || typeof dialog.showModal !== 'function') {
      return Promise.resolve(window.confirm(message));
    }
    document.getElementById('confirm-message').textContent = message;
    document.getElementById('confirm-ok').textContent = label || 'Confirm';
    return new Promise(function (resolve) {
      dialog.addEventListener('close', function done() {
        dialog.removeEventListener('close', done);
        resolve(dialog.returnValue === 'ok');
      });
      dialog.returnValue = '';
      dialog.showModal();
    });
  };

  // --- reading a form into JSON -------------------------------------------------------------
  function scalar(text) {
    const t = text.trim();
    if (t === 'true') return true;
    if (t === 'false') return false;
    if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
    return t;
  }

  function convert(raw, type) {
    switch (type) {
      case 'int': return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
      case 'float': return raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
      case 'intlist': return raw.split(/[\s,]+/).filter(Boolean).map(function (x) {
        return /^\d+$/.test(x) ? Number(x) : x;
      });
      case 'scalar': return scalar(raw);
      case 'scalarlist': return raw.split(',').map(function (x) { return x.trim(); }).filter(Boolean).map(scalar);
      case 'datetime': {
        const moment = new Date(raw);
        return Number.isNaN(moment.getTime()) ? raw : moment.toISOString();
      }
      case 'pairs': {
        const out = {};
        raw.split('\n').forEach(function (line) {
          const at = line.indexOf('=');
          if (at > 0) out[line.slice(0, at).trim()] = scalar(line.slice(at + 1));
        });
        return out;
      }
      default: return raw;
    }
  }

  function place(target, path, value, append) {
    const parts = path.split('.');
    let node = target;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = parts[i];
      if (node[key] === undefined) node[key] = /^\d+$/.test(parts[i + 1]) ? [] : {};
      node = node[key];
    }
    const last = parts[parts.length - 1];
    if (append) {
      if (!Array.isArray(node[last])) node[last] = [];
      if (value !== undefined) node[last].push(value);
    } else {
      node[last] = value;
    }
  }

  function prune(value) {
    if (Array.isArray(value)) {
      return value.filter(function (v) { return v !== undefined; }).map(prune);
    }
    if (value && typeof value === 'object') {
      Object.keys(value).forEach(function (key) {
        value[key] = prune(value[key]);
        const v = value[key];
        if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0 &&
            !(key in KEEP_EMPTY)) delete value[key];
      });
    }
    return value;
  }
  const KEEP_EMPTY = { payload: true };

  // The form's own named fields and those outside it that name it (form="id").
  function namedFields(form) {
    const fields = Array.prototype.slice.call(form.querySelectorAll('[name]'));
    if (form.id) {
      document.querySelectorAll('[form="' + CSS.escape(form.id) + '"][name]').forEach(function (el) {
        if (fields.indexOf(el) < 0) fields.push(el);
      });
    }
    return fields;
  }

  MC.collect = function (form) {
    const out = {};
    namedFields(form).forEach(function (el) {
      if (!el.name || el.matches(':disabled') || el.closest('template')) return;
      const type = el.dataset.type || 'str';
      if (type === 'list' && el.type !== 'checkbox') {
        // a fixed member of a checkbox list (e.g. the locked security category)
        place(out, el.name, el.value, true);
        return;
      }
      if (el.type === 'checkbox') {
        const item = el.dataset.item === 'int' && /^\d+$/.test(el.value) ? Number(el.value) : el.value;
        if (type === 'list') place(out, el.name, el.checked ? item : undefined, true);
        else place(out, el.name, el.checked);
        return;
      }
      if (el.type === 'radio') {
        if (el.checked) place(out, el.name, el.value);
        return;
      }
      if (el.tagName === 'BUTTON') return;
      const raw = el.value;
      if (raw.trim() === '' && type !== 'keep') {
        if (el.dataset.empty === 'null') place(out, el.name, null);
        else if (el.dataset.empty === 'blank') place(out, el.name, '');
        return;
      }
      place(out, el.name, convert(raw, type));
    });
    return prune(out);
  };

  // --- showing errors next to their fields ------------------------------------------------------
  function fieldOf(detail) {
    if (!detail || typeof detail !== 'object') return null;
    let name = null;
    if (typeof detail.field === 'string') name = detail.field;
    else if (typeof detail.bound === 'string') name = 'bounds.' + detail.bound;
    else if (Array.isArray(detail.loc)) name = detail.loc.filter(function (p) { return p !== 'body'; }).join('.');
    return name ? name.replace(/\[(\d+)\]/g, '.$1') : null;
  }

  function errorSlot(form, name) {
    let candidate = name;
    while (candidate) {
      const slot = form.querySelector('[data-error-for="' + CSS.escape(candidate) + '"]');
      if (slot) return slot;
      const cut = candidate.lastIndexOf('.');
      candidate = cut > 0 ? candidate.slice(0, cut) : '';
    }
    return null;
  }

  function clearErrors(form) {
    form.querySelectorAll('[data-error-for]').forEach(function (slot) {
      slot.textContent = '';
      slot.hidden = true;
    });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (el) { el.removeAttribute('aria-invalid'); });
    const box = form.querySelector('.form-error');
    if (box) { box.hidden = true; box.textContent = ''; }
  }

  // --- errors in plain words: the field's own label, what is wrong, what to do ---------------------
  function sentence(text) {
    const t = String(text).trim();
    if (!t) return t;
    const first = t.charAt(0).toUpperCase() + t.slice(1);
    return /[.!?]$/.test(first) ? first : first + '.';
  }

  function labelOf(form, slot, name) {
    const input = slot ? (form.querySelector('[aria-describedby~="' + CSS.escape(slot.id) + '"]') ||
      document.querySelector('[form="' + CSS.escape(form.id || '-') + '"][aria-describedby~="' + CSS.escape(slot.id) + '"]')) : null;
    if (input) {
      const set = input.closest('fieldset');
      if (input.tagName === 'FIELDSET') return input.querySelector('legend').textContent.trim();
      const label = input.id ? form.ownerDocument.querySelector('label[for="' + CSS.escape(input.id) + '"]') : null;
      if (label && label.textContent.trim()) return label.textContent.trim();
      if (set && set.querySelector('legend')) return set.querySelector('legend').textContent.trim();
    }
    const last = (name || '').split('.').filter(function (p) { return !/^\d+$/.test(p); }).pop() || 'this field';
    return last.replace(/_/g, ' ');
  }

  function number(text) {
    const found = /(-?\d+(?:\.\d+)?)/.exec(text || '');
    return found ? found[1] : '';
  }

  // pydantic's error types, said for a person
  const PLAIN = {
    missing: function (l) { return l + ' is required: fill it in.'; },
    string_too_short: function (l) { return l + ' cannot be empty: fill it in.'; },
    string_too_long: function (l, m) { return l + ' is too long: at most ' + number(m) + ' characters. Shorten it.'; },
    too_short: function (l, m) { return l + ': choose at least ' + (number(m) || 'one') + '.'; },
    too_long: function (l, m) { return l + ': at most ' + number(m) + ' items. Remove some.'; },
    int_parsing: function (l) { return l + ' must be a whole number, such as 3.'; },
    int_type: function (l) { return l + ' must be a whole number, such as 3.'; },
    int_from_float: function (l) { return l + ' must be a whole number, such as 3.'; },
    float_parsing: function (l) { return l + ' must be a number, such as 2.5.'; },
    float_type: function (l) { return l + ' must be a number, such as 2.5.'; },
    bool_parsing: function (l) { return l + ' must be ticked or not.'; },
    greater_than_equal: function (l, m) { return l + ' must be ' + number(m) + ' or more.'; },
    greater_than: function (l, m) { return l + ' must be more than ' + number(m) + '.'; },
    less_than_equal: function (l, m) { return l + ' must be ' + number(m) + ' or less.'; },
    less_than: function (l, m) { return l + ' must be less than ' + number(m) + '.'; },
    enum: function (l) { return l + ': choose one of the values offered.'; },
    literal_error: function (l) { return l + ': choose one of the values offered.'; },
    string_pattern_mismatch: function (l) { return l + ' holds characters that are not allowed: use letters, digits, dots, dashes and underscores.'; },
    extra_forbidden: function (l) { return l + ' is not expected here: reload the page and try again.'; },
    datetime_parsing: function (l) { return l + ' is not a date and time: pick one.'; },
    datetime_from_date_parsing: function (l) { return l + ' is not a date and time: pick one.'; },
    list_type: function (l) { return l + ' must be a list.'; },
    string_type: function (l) { return l + ' must be text.'; },
  };

  function detailText(form, slot, name, detail) {
    const message = String(detail.message || detail.msg || 'invalid value');
    const say = detail.type && PLAIN[detail.type];
    if (say) return say(labelOf(form, slot, name), message);
    if (detail.type === 'value_error') return sentence(message.replace(/^Value error, /, ''));
    return sentence(message);
  }

  MC.showError = function (form, err) {
    const box = form.querySelector('.form-error');
    const unplaced = [];
    let firstInvalid = null;
    let details = err instanceof ApiError ? err.details : null;
    if (details && !Array.isArray(details) && typeof details === 'object') details = [details];
    if (Array.isArray(details) && (err.status === 422 || err.status === 400)) {
      details.forEach(function (detail) {
        const name = fieldOf(detail);
        const slot = name ? errorSlot(form, name) : null;
        if (!slot) { unplaced.push(detailText(form, null, name, detail)); return; }
        const line = document.createElement('span');
        line.textContent = detailText(form, slot, name, detail);
        if (detail.check) line.dataset.checkCode = detail.check;
        if (slot.childNodes.length) slot.appendChild(document.createElement('br'));
        slot.appendChild(line);
        slot.hidden = false;
        const input = form.querySelector('[aria-describedby~="' + CSS.escape(slot.id) + '"]') ||
          form.querySelector('[name="' + CSS.escape(slot.dataset.errorFor) + '"]');
        if (input) {
          input.setAttribute('aria-invalid', 'true');
          if (!firstInvalid) firstInvalid = input;
        }
      });
    }
    if (box) {
      box.textContent = '';
      const head = document.createElement('p');
      head.textContent = MC.describe(err);
      box.appendChild(head);
      if (unplaced.length) {
        const list = document.createElement('ul');
        unplaced.forEach(function (text) {
          const item = document.createElement('li');
          item.textContent = text;
          list.appendChild(item);
        });
        box.appendChild(list);
      }
      if (err instanceof ApiError && err.status === 401) {
        const link = document.createElement('a');
        link.href = '/?next=' + encodeURIComponent(window.location.pathname);
        link.textContent = 'Log in again';
        box.appendChild(link);
      }
      box.hidden = false;
    }
    (firstInvalid || box || form).focus();
  };

  // --- submitting ---------------------------------------------------------------------------
  function fill(template, result) {
    return template.replace(/\{(\w+)\}/g, function (_, key) {
      return result && result[key] !== undefined ? encodeURIComponent(String(result[key])) : '';
    });
  }

  async function succeed(form, result) {
    const how = form.dataset.success || 'reload';
    form.dispatchEvent(new CustomEvent('mc:success', { detail: result, bubbles: true }));
    if (how === 'reload') window.location.reload();
    else if (how === 'logout') window.location.assign('/');
    else if (how.indexOf('redirect:') === 0) window.location.assign(fill(how.slice(9), result));
    else if (how === 'event') return;
    else if (how === 'secret') {
      const box = form.parentElement.querySelector('[data-secret-output]');
      if (box && result && result.token) {
        box.querySelector('code').textContent = result.token;
        box.hidden = false;
        box.focus();
      }
      form.reset();
    }
  }

  document.addEventListener('submit', async function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    if (form.getAttribute('aria-busy') === 'true') return;
    clearErrors(form);
    // a form with several actions: the button pressed may name its own endpoint,
    // confirmation and the fields it sends (data-send="ids comment")
    const submitter = event.submitter && event.submitter.form === form ? event.submitter : null;
    const pick = submitter ? submitter.dataset : {};
    const question = pick.confirm || form.dataset.confirm;
    if (question) {
      const ok = await MC.confirm(question, pick.confirmLabel || form.dataset.confirmLabel);
      if (!ok) return;
    }
    const buttons = form.querySelectorAll('button[type="submit"], button:not([type])');
    form.setAttribute('aria-busy', 'true');
    buttons.forEach(function (b) { b.disabled = true; b.setAttribute('aria-busy', 'true'); });
    const status = form.querySelector('[role="status"]');
    if (status) status.textContent = 'Working…';
    try {
      let body = form.dataset.body === 'none' ? undefined : MC.collect(form);
      if (body && pick.send) {
        const keep = pick.send.split(' ');
        Object.keys(body).forEach(function (key) { if (keep.indexOf(key) < 0) delete body[key]; });
      }
      const result = await MC.api(form.dataset.method || 'POST', pick.api || form.dataset.api, body);
      if (status) status.textContent = 'Done.';
      await succeed(form, result);
    } catch (err) {
      if (status) status.textContent = '';
      MC.showError(form, err);
    } finally {
      form.removeAttribute('aria-busy');
      buttons.forEach(function (b) { b.disabled = false; b.removeAttribute('aria-busy'); });
    }
  });

  // --- repeatable rows ------------------------------------------------------------------------
  let counter = 1000;
  document.addEventListener('click', function (event) {
    const add = event.target.closest('[data-add-row]');
    if (add) {
      const template = document.getElementById(add.dataset.addRow);
      const list = document.getElementById(add.dataset.into);
      if (!template || !list) return;
      const index = String(counter++);
      const row = template.content.firstElementChild.cloneNode(true);
      row.querySelectorAll('*').forEach(function (el) {
        ['name', 'id', 'for', 'data-error-for', 'aria-describedby', 'data-into'].forEach(function (attr) {
          const value = el.getAttribute(attr);
          if (value && value.indexOf('__i__') >= 0) el.setAttribute(attr, value.split('__i__').join(index));
        });
      });
      list.appendChild(row);
      const first = row.querySelector('input, select, textarea');
      if (first) first.focus();
      row.dispatchEvent(new CustomEvent('mc:row-added', { bubbles: true }));
      return;
    }
    const remove = event.target.closest('[data-remove-row]');
    if (remove) {
      const row = remove.closest('.repeat-row');
      const list = row && row.parentElement;
      if (row && list && list.children.length > Number(list.dataset.min || 0)) {
        row.remove();
        const addButton = document.querySelector('[data-into="' + CSS.escape(list.id) + '"]');
        if (addButton) addButton.focus();
      }
    }
  });

  // <form data-success="event"> with a [data-result] element: the answer's message goes there
  document.addEventListener('mc:success', function (event) {
    const out = event.target.querySelector && event.target.querySelector('[data-result]');
    const result = event.detail;
    if (!out || !result || typeof result.message !== 'string') return;
    out.textContent = (result.ok ? 'OK: ' : 'FAILED: ') + result.message;
    out.className = 'badge ' + (result.ok ? 'ok' : 'bad');
  });

  // --- the phone menu: one button folds the navigation away -------------------------------------
  const menu = document.getElementById('menu-toggle');
  if (menu) {
    menu.addEventListener('click', function () {
      const header = menu.closest('.top');
      const open = !header.classList.contains('menu-open');
      header.classList.toggle('menu-open', open);
      menu.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) {
        const first = header.querySelector('#main-nav a');
        if (first) first.focus();
      }
    });
    document.addEventListener('keydown', function (event) {
      const header = menu.closest('.top');
      if (event.key === 'Escape' && header.classList.contains('menu-open')) {
        header.classList.remove('menu-open');
        menu.setAttribute('aria-expanded', 'false');
        menu.focus();
      }
    });
  }

  // --- small helpers used by several pages ------------------------------------------------------
  // <input type="checkbox" data-check-all="form-id">: ticks every box of that list
  document.addEventListener('change', function (event) {
    const all = event.target.closest('[data-check-all]');
    if (!all) return;
    document.querySelectorAll('input[type="checkbox"][form="' + CSS.escape(all.dataset.checkAll) + '"]')
      .forEach(function (box) { if (box !== all) box.checked = all.checked; });
  });

  document.addEventListener('click', function (event) {
    const copy = event.target.closest('[data-copy]');
    if (copy && navigator.clipboard) {
      const source = document.querySelector(copy.dataset.copy);
      if (source) navigator.clipboard.writeText(source.textContent).then(function () {
        copy.textContent = 'Copied';
      }, function () { copy.textContent = 'Select the text and copy it'; });
    }
  });

  // <span data-countdown="ISO time">: the time left, then the page reloads (a held
  // approval takes effect by itself: the reloaded page shows it approved)
  document.querySelectorAll('[data-countdown]').forEach(function (box) {
    const end = Date.parse(box.dataset.countdown);
    if (Number.isNaN(end)) return;
    function tick() {
      const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      box.textContent = Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0');
      if (left > 0) window.setTimeout(tick, 1000);
      else window.setTimeout(function () { window.location.reload(); }, 1500);
    }
    tick();
  });

  // Run a read-only check on load and show its answer (audit chain verification).
  document.querySelectorAll('[data-check]').forEach(async function (box) {
    try {
      const result = await MC.api('GET', box.dataset.check);
      box.textContent = result.ok
        ? 'Intact: all ' + result.checked + ' records verified; the hash chain is unbroken.'
        : 'BROKEN at record ' + result.first_bad_id + ': ' + (result.reason || 'hash mismatch') +
          ' (' + result.checked + ' records checked).';
      box.className = result.ok ? 'notice ok' : 'notice warn';
    } catch (err) {
      box.textContent = 'The chain could not be checked: ' + MC.describe(err);
      box.className = 'notice warn';
    }
  });
})();
