// The search box and the canvas filter the entries shown below; `#q=ID` in the address fills the box.
(function () {
  var box = document.getElementById('search');
  var step = null;
  var entries = Array.prototype.slice.call(document.querySelectorAll('details.entry'));
  var count = document.getElementById('shown');
  function apply() {
    var q = box.value.trim().toLowerCase();
    var n = 0;
    entries.forEach(function (e) {
      var hit = (!q || e.dataset.customer.toLowerCase().indexOf(q) >= 0) &&
        (!step || (e.dataset.journey === step[0] && e.dataset.steps.indexOf(' ' + step[1] + ' ') >= 0));
      e.hidden = !hit;
      if (hit) { n++; }
      e.open = hit && q !== '' && e.dataset.customer.toLowerCase() === q;
    });
    var what = step ? ' that walked ' + step[0] + ' / ' + step[1] : '';
    count.textContent = n + ' of ' + entries.length + ' entries shown' + what;
    document.getElementById('clear-step').hidden = !step;
  }
  box.addEventListener('input', apply);
  document.querySelectorAll('svg .step').forEach(function (node) {
    node.addEventListener('click', function () {
      var svg = node.closest('svg');
      step = [svg.dataset.journey, node.dataset.step];
      apply();
      document.getElementById('customers').scrollIntoView();
    });
  });
  document.getElementById('clear-step').addEventListener('click', function () { step = null; apply(); });
  function fromHash() {
    var m = /[#&]q=([^&]*)/.exec(location.hash);
    if (m) { box.value = decodeURIComponent(m[1]); }
    apply();
  }
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
