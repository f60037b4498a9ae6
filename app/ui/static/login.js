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
        body: JSON.stringify({ username: user.value.trim(), password: pass.value }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (response.ok) {
        window.location.assign(form.dataset.next || '/ui/');
        return;
      }
      if (response.status === 401) {
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
