// Small progressive enhancements; every page works without them.
(function () {
  var banner = document.querySelector(".acting-banner");
  if (banner) {
    var left = parseInt(banner.dataset.secondsLeft, 10);
    var out = banner.querySelector(".acting-countdown");
    var tick = function () {
      var m = Math.floor(left / 60), s = left % 60;
      out.textContent = m + " min " + (s < 10 ? "0" : "") + s + " s";
      if (left <= 0) { window.location.reload(); return; }
      left -= 1;
    };
    tick();
    setInterval(tick, 1000);
  }
  // A new API key, shown once: a button copies it (hidden where the clipboard is out of reach).
  var copy = document.getElementById("copy-api-key"), key = document.getElementById("new-api-key");
  if (copy && key && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(key.textContent.trim()).then(function () { copy.textContent = "Copied"; });
    });
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
