// The account page: set up the second factor. The key, its QR code and the
// recovery codes come in the answers of the requests that make them and are
// shown once; nothing is kept in browser storage or put in a URL.
'use strict';
(function () {
  const MC = window.MC;
  const enrol = document.getElementById('totp-enrol');
  if (!MC || !enrol) return;
  const setup = document.getElementById('totp-setup');
  const confirm = document.getElementById('totp-confirm');
  const recovery = document.getElementById('totp-recovery');

  function fail(form, err) {
    const box = form.querySelector('.form-error');
    box.textContent = MC.describe(err) + (err && err.message ? ' (' + err.message + ')' : '');
    box.hidden = false;
    box.focus();
  }

  function busy(form, on) {
    form.querySelectorAll('button').forEach(function (b) { b.disabled = on; });
  }

  // The QR code is an SVG made by the server (segno): parsed as SVG, never as HTML.
  function showQr(svgText) {
    const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
    const svg = doc.documentElement;
    if (svg.nodeName.toLowerCase() !== 'svg' || svg.querySelector('script')) return;
    const holder = document.getElementById('totp-qr');
    holder.replaceChildren(document.importNode(svg, true));
    holder.firstElementChild.setAttribute('role', 'img');
    holder.firstElementChild.setAttribute('aria-label', 'QR code for your authenticator app');
  }

  enrol.addEventListener('submit', async function (event) {
    event.preventDefault();
    busy(enrol, true);
    try {
      const password = enrol.elements.namedItem('password');
      await MC.api('POST', '/api/auth/step-up', { password: password.value });
      password.value = '';
      const made = await MC.api('POST', '/api/auth/totp/enrol');
      showQr(made.qr_svg);
      document.getElementById('totp-secret').textContent = made.secret;
      enrol.hidden = true;
      setup.hidden = false;
      confirm.elements.namedItem('code').focus();
    } catch (err) {
      fail(enrol, err);
    } finally {
      busy(enrol, false);
    }
  });

  confirm.addEventListener('submit', async function (event) {
    event.preventDefault();
    busy(confirm, true);
    try {
      const code = confirm.elements.namedItem('code');
      const done = await MC.api('POST', '/api/auth/totp/confirm', { code: code.value });
      const list = document.getElementById('totp-recovery-codes');
      list.replaceChildren();
      done.recovery_codes.forEach(function (text) {
        const item = document.createElement('li');
        const value = document.createElement('code');
        value.textContent = text;
        item.appendChild(value);
        list.appendChild(item);
      });
      setup.hidden = true;
      document.getElementById('totp-secret').textContent = '';
      document.getElementById('totp-qr').replaceChildren();
      recovery.hidden = false;
      recovery.focus();
    } catch (err) {
      fail(confirm, err);
    } finally {
      busy(confirm, false);
    }
  });
})();
