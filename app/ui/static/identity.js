// The identity editor (F7): review a line diff of the change before saving it.
// Saving then asks once more (data-confirm on the form); the server decides.
'use strict';
(function () {
  const form = document.getElementById('identity-form');
  if (!form) return;
  const original = document.getElementById('identity-current').textContent;
  const text = form.elements.namedItem('text');
  const review = document.getElementById('identity-review');
  const preview = document.getElementById('identity-preview');
  const diffBox = document.getElementById('identity-diff');
  const save = document.getElementById('identity-save');
  const MAX_CELLS = 4000000;

  // Longest-common-subsequence line diff: [kind, line] with kind ' ', '+' or '-'.
  function diff(a, b) {
    const n = a.length;
    const m = b.length;
    if ((n + 1) * (m + 1) > MAX_CELLS) return null;
    const table = [];
    for (let i = 0; i <= n; i++) table.push(new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
      }
    }
    const out = [];
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; }
      else if (table[i + 1][j] >= table[i][j + 1]) { out.push(['-', a[i]]); i++; }
      else { out.push(['+', b[j]]); j++; }
    }
    while (i < n) out.push(['-', a[i++]]);
    while (j < m) out.push(['+', b[j++]]);
    return out;
  }

  function line(kind, content) {
    const span = document.createElement('span');
    span.className = kind === '+' ? 'add' : kind === '-' ? 'del' : kind === '@' ? 'hunk' : 'same';
    span.textContent = (kind === '@' ? '' : kind + ' ') + content;
    return span;
  }

  function render(changes) {
    diffBox.textContent = '';
    let added = 0;
    let removed = 0;
    let run = [];
    function flush(keepTail) {
      if (run.length > 6) {
        run.slice(0, 2).forEach(function (c) { diffBox.append(line(' ', c)); });
        diffBox.append(line('@', '… ' + (run.length - (keepTail ? 4 : 2)) + ' unchanged lines …'));
        if (keepTail) run.slice(-2).forEach(function (c) { diffBox.append(line(' ', c)); });
      } else {
        run.forEach(function (c) { diffBox.append(line(' ', c)); });
      }
      run = [];
    }
    changes.forEach(function (change) {
      if (change[0] === ' ') { run.push(change[1]); return; }
      flush(true);
      if (change[0] === '+') added++; else removed++;
      diffBox.append(line(change[0], change[1]));
    });
    flush(false);
    return [added, removed];
  }

  review.addEventListener('click', function () {
    const before = original === '' ? [] : original.split('\n');
    const after = text.value === '' ? [] : text.value.split('\n');
    const changes = diff(before, after);
    const summary = document.getElementById('identity-summary');
    if (changes === null) {
      diffBox.textContent = 'The texts are too long to compare here; the saved version history shows the diff.';
      summary.textContent = 'Review the text above carefully.';
    } else {
      const counts = render(changes);
      summary.textContent = counts[0] || counts[1]
        ? counts[0] + ' line(s) added, ' + counts[1] + ' line(s) removed.'
        : 'No change: saving would only record a new version with the same text.';
    }
    preview.hidden = false;
    save.disabled = false;
    summary.focus();
  });

  text.addEventListener('input', function () {
    preview.hidden = true;
    save.disabled = true;
  });
})();
