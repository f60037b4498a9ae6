// Login: posts the form to the JSON login API. The session cookie it sets is
// HttpOnly; nothing is kept in browser storage and nothing goes in a URL.
'use strict';
(function () {
  const form = document.getElementById('login-form');
  if (!form) return;
  const error = document.getElementById('login-error');
  const button = form.querySelector('button[type="submit"]');
  const user = form.elements.namedItem('username');
  const pass = form.elements.namedItem('password');
  // shown when the server asks for the second factor (app/auth/totp.py)
  const codeField = document.getElementById('code-field');
  const code = form.elements.namedItem('code');

  function fail(text) {
    error.textContent = text;
    error.hidden = false;
    pass.value = '';
    pass.focus();
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    error.hidden = true;
    if (!user.value.trim() || !pass.value) {
      fail('Enter your user name and your password.');
      return;
    }
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(Object.assign(
          { username: user.value.trim(), password: pass.value },
          code && !codeField.hidden && code.value.trim() ? { code: code.value.trim() } : {}
        )),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (response.ok) {
        window.location.assign(form.dataset.next || '/ui/');
        return;
      }
      let reason = '';
      try {
        reason = ((await response.json()).error || {}).code || '';
      } catch (err) {
        reason = '';
      }
      if (reason === 'second_factor_required' || reason === 'invalid_second_factor') {
        codeField.hidden = false;
        error.textContent = reason === 'second_factor_required'
          ? 'Enter the code from your authenticator app.'
          : 'That code is wrong or was already used. Wait for the next code and try again.';
        error.hidden = false;
        code.value = '';
        code.focus();
      } else if (response.status === 401) {
        fail('Wrong user name or password.');
      } else if (response.status === 429) {
        const wait = response.headers.get('Retry-After');
        fail('Too many attempts. Wait ' + (wait ? wait + ' seconds' : 'a while') + ' and try again.');
      } else {
        fail('The server could not log you in right now. Try again in a moment.');
      }
    } catch (err) {
      fail('The server could not be reached. Check the VPN connection and try again.');
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
})();
