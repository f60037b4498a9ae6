// The rule builder (F8): a form for the typed rule schema, never JSON text.
// Conditions offer only the fields the chosen event allows; each action shows
// only its own fields (the others are disabled, so they are not sent).
// The dry-run form renders what the rule would do; nothing is written.
'use strict';
(function () {
  const builder = document.getElementById('rule-form');
  if (builder) {
    const data = JSON.parse(builder.dataset.fields || '{}');
    const fields = data.fields || {};
    const categories = data.categories || {};
    const presets = data.presets || {};
    const on = builder.elements.namedItem('on');

    const fillFields = function (select) {
      const keep = select.value;
      const names = (fields[on.value] || []).map(function (pair) { return pair[0]; });
      select.textContent = '';
      (fields[on.value] || []).forEach(function (pair) {
        const option = document.createElement('option');
        option.value = pair[0];
        option.textContent = pair[1] + ' (' + pair[0] + ')';
        select.append(option);
      });
      if (keep && names.indexOf(keep) >= 0) select.value = keep;
    };
    // a notification's category follows the event until the owner picks one
    const followCategory = function (select) {
      if (select.dataset.chosen === 'yes' || !categories[on.value]) return;
      select.value = categories[on.value];
    };
    const syncOp = function (row) {
      const op = row.querySelector('[data-role="op"]');
      const value = row.querySelector('[data-role="value"]');
      if (!op || !value) return;
      const list = op.value === 'in' || op.value === 'not_in';
      value.dataset.type = list ? 'scalarlist' : 'scalar';
      const hint = row.querySelector('[data-role="value-hint"]');
      if (hint) {
        hint.textContent = list
          ? 'Several values, separated by commas.'
          : 'One value: a number, true/false, or text.';
      }
    };
    const syncAction = function (row) {
      const type = row.querySelector('[data-role="action-type"]');
      if (!type) return;
      row.querySelectorAll('fieldset[data-action]').forEach(function (set) {
        const active = set.dataset.action === type.value;
        set.hidden = !active;
        set.disabled = !active;
      });
    };
    const syncAll = function () {
      builder.querySelectorAll('[data-role="field"]').forEach(fillFields);
      builder.querySelectorAll('[data-role="category"]').forEach(followCategory);
      builder.querySelectorAll('.repeat-row').forEach(function (row) { syncOp(row); syncAction(row); });
    };
    on.addEventListener('change', syncAll);
    builder.addEventListener('change', function (event) {
      const row = event.target.closest('.repeat-row');
      if (!row) return;
      if (event.target.dataset.role === 'op') syncOp(row);
      if (event.target.dataset.role === 'action-type') syncAction(row);
      if (event.target.dataset.role === 'category') event.target.dataset.chosen = 'yes';
    });
    builder.addEventListener('mc:row-added', syncAll);

    // presets fill the form; nothing is sent until the owner presses "Create rule"
    const setValue = function (el, value) {
      if (!el || value === undefined) return;
      el.value = String(value);
      el.dispatchEvent(new Event('change', { bubbles: true }));
    };
    const applyPreset = function (preset) {
      setValue(builder.elements.namedItem('name'), preset.name);
      setValue(on, preset.on);
      const conditions = document.getElementById('conditions');
      conditions.textContent = '';
      const addCondition = builder.querySelector('[data-add-row="condition-template"]');
      (preset.when || []).forEach(function (c) {
        addCondition.click();
        const row = conditions.lastElementChild;
        fillFields(row.querySelector('[data-role="field"]'));
        setValue(row.querySelector('[data-role="field"]'), c.field);
        setValue(row.querySelector('[data-role="op"]'), c.op);
        setValue(row.querySelector('[data-role="value"]'), c.value);
      });
      const actions = document.getElementById('actions');
      while (actions.children.length > 1) actions.lastElementChild.remove();
      const row = actions.firstElementChild;
      setValue(row.querySelector('[data-role="action-type"]'), preset.then.type);
      const set = row.querySelector('fieldset[data-action="' + CSS.escape(preset.then.type) + '"]');
      Object.keys(preset.then).forEach(function (key) {
        if (key === 'type' || !set) return;
        const el = set.querySelector('[name$=".' + CSS.escape(key) + '"]');
        setValue(el, preset.then[key]);
        if (el && el.dataset.role === 'category') el.dataset.chosen = 'yes';
      });
      builder.elements.namedItem('name').focus();
    };
    builder.addEventListener('click', function (event) {
      const button = event.target.closest('[data-preset]');
      if (button && presets[button.dataset.preset]) applyPreset(presets[button.dataset.preset]);
    });
    syncAll();
  }

  const dry = document.getElementById('dry-run-form');
  if (dry) {
    const out = document.getElementById('dry-run-result');
    dry.addEventListener('mc:success', function (event) {
      const r = event.detail;
      out.textContent = '';
      const head = document.createElement('p');
      head.className = r.would_fire ? 'notice ok' : 'notice warn';
      const BLOCKED = {
        disabled: 'the conditions match, but the rule is disabled.',
        approval_pending: 'the conditions match, but the rule waits for approval.',
      };
      let why = r.event_type_matches ? 'a condition does not match.' : 'the event type differs.';
      if (r.matched && r.blocked_reason) why = BLOCKED[r.blocked_reason] || 'blocked: ' + r.blocked_reason + '.';
      head.textContent = r.would_fire ? 'This event would fire the rule.' : 'It would not fire: ' + why;
      out.append(head);
      if (r.conditions.length) {
        const table = document.createElement('table');
        const caption = document.createElement('caption');
        caption.textContent = 'Conditions';
        table.append(caption);
        const headRow = table.insertRow();
        ['Field', 'Operator', 'Value', 'Event has', 'Matches'].forEach(function (t) {
          const th = document.createElement('th');
          th.textContent = t;
          headRow.append(th);
        });
        r.conditions.forEach(function (c) {
          const row = table.insertRow();
          [c.field, c.op, JSON.stringify(c.value), JSON.stringify(c.actual), c.matched ? 'yes' : 'no']
            .forEach(function (t) { row.insertCell().textContent = t; });
        });
        out.append(table);
      }
      const list = document.createElement('ul');
      r.actions.forEach(function (a) {
        const item = document.createElement('li');
        item.textContent = a.type + ': would ' + a.would;
        list.append(item);
      });
      if (r.actions.length) {
        const title = document.createElement('h3');
        title.textContent = 'Actions';
        out.append(title, list);
      }
      out.hidden = false;
    });
  }
})();
