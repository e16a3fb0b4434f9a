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

  // A table or chart too wide for a small screen scrolls in its own box: that box takes the focus,
  // so a keyboard can scroll it too.
  var scrollers = function () {
    document.querySelectorAll(".table-container, .chart-frame, :not(.table-container) > .table").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) box.setAttribute("tabindex", "0");
      else if (box.getAttribute("tabindex") === "0") box.removeAttribute("tabindex");
    });
  };
  scrollers();
  window.addEventListener("resize", scrollers);

  // The sidebar is a <details> rendered open (usable without script); on a small screen it starts
  // closed, as a Menu button, and opens again when the window grows past 800 px.
  var menu = document.querySelector("[data-nav-menu]");
  if (menu && window.matchMedia) {
    var small = window.matchMedia("(max-width: 799.98px)");
    var fit = function () { menu.open = !small.matches; };
    fit();
    if (small.addEventListener) small.addEventListener("change", fit);
  }

  // The account switcher's type-ahead: the person's own accounts from the server, a page at a time
  // (they may have thousands), written as text. Without script the form opens the search page.
  var switcher = document.querySelector("[data-switcher]");
  if (switcher && window.fetch) {
    var input = switcher.querySelector("[data-switcher-input]");
    var results = switcher.querySelector("[data-switcher-results]");
    var endpoint = switcher.querySelector("form").getAttribute("action");
    var original = results.cloneNode(true);
    var timer = null, asked = 0;
    var item = function (text, cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      return span;
    };
    var show = function (answer, query) {
      results.replaceChildren();
      answer.data.forEach(function (found) {
        var li = document.createElement("li"), a = document.createElement("a");
        a.href = found.url;
        var meta = found.role + (found.manager ? " · managed by " + found.manager : "");
        if (found.status !== "enabled") meta += " · " + found.status_label;
        a.append(item(found.name, "switcher-result-name"), item(meta, "switcher-result-meta"));
        li.append(a);
        results.append(li);
      });
      if (!answer.data.length) {
        var none = document.createElement("li");
        none.className = "empty-state";
        none.textContent = "No account matches “" + query + "”.";
        results.append(none);
      } else if (answer.meta.total_pages > 1) {
        var more = document.createElement("li"), link = document.createElement("a");
        link.href = endpoint + "?q=" + encodeURIComponent(query);
        link.textContent = "All " + answer.meta.total_results.toLocaleString("en") + " matches";
        more.className = "switcher-more";
        more.append(link);
        results.append(more);
      }
    };
    var search = function () {
      var query = input.value.trim(), mine = ++asked;
      if (!query) { results.replaceWith(original.cloneNode(true)); results = switcher.querySelector("[data-switcher-results]"); return; }
      fetch(endpoint + "?format=json&q=" + encodeURIComponent(query), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer && mine === asked) show(answer, query); })
        .catch(function () { /* the form still opens the search page */ });
    };
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, 150);
    });
    switcher.addEventListener("toggle", function () { if (switcher.open) input.focus(); });
  }
})();
