// The VPN page: a new peer's configuration and QR code, shown once (docs/vpn.md).
// They come in the answer to the add form and live only in this page's memory:
// nothing is stored in the browser, reloading the page drops them.
'use strict';
(function () {
  const form = document.getElementById('peer-form');
  const box = document.getElementById('peer-once');
  if (!form || !box) return;
  let saved = null;

  form.addEventListener('mc:success', function (event) {
    const peer = event.detail;
    if (!peer || typeof peer.config !== 'string') return;
    box.querySelector('[data-field="name"]').textContent = peer.name;
    box.querySelector('[data-field="address"]').textContent = peer.address;
    document.getElementById('peer-config').textContent = peer.config;
    // the server's segno SVG, parsed as SVG (never as HTML) and checked to be one
    const qr = document.getElementById('peer-qr');
    qr.textContent = '';
    const svg = new DOMParser().parseFromString(peer.qr_svg, 'image/svg+xml').documentElement;
    if (svg && svg.namespaceURI === 'http://www.w3.org/2000/svg' && svg.localName === 'svg' &&
        !svg.querySelector('script, foreignObject')) {
      svg.setAttribute('role', 'img');
      svg.setAttribute('aria-label', 'QR code of the configuration of ' + peer.name);
      qr.appendChild(document.importNode(svg, true));
    }
    saved = peer;
    form.reset();
    form.hidden = true;
    box.hidden = false;
    box.focus();
  });

  document.getElementById('peer-download').addEventListener('click', function () {
    if (!saved) return;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([saved.config], { type: 'text/plain' }));
    link.download = 'mission-control-' + saved.name + '.conf';
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });
})();
