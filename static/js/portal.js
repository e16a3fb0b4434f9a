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
  // With it, the search box is an ARIA combobox over a listbox of the accounts (WAI-ARIA APG's
  // "list autocomplete" pattern): the focus stays in the box, Arrow Down/Up move the active option
  // (aria-activedescendant), Enter opens it, Escape clears it or closes the switcher. Each option is
  // still a link, so a click, or a middle click, works as before.
  var switcher = document.querySelector("[data-switcher]");
  if (switcher && window.fetch) {
    var input = switcher.querySelector("[data-switcher-input]");
    var results = switcher.querySelector("[data-switcher-results]");
    var status = switcher.querySelector("[data-switcher-status]");
    var more = switcher.querySelector("[data-switcher-more]");
    var endpoint = switcher.querySelector("form").getAttribute("action");
    var timer = null, asked = 0, active = -1;
    var options = function () { return Array.prototype.slice.call(results.querySelectorAll("[role=option]")); };
    var asOptions = function () {
      results.querySelectorAll("li").forEach(function (li, index) {
        var a = li.querySelector("a");
        li.setAttribute("role", "none");
        if (!a) return;
        a.setAttribute("role", "option");
        a.setAttribute("aria-selected", "false");
        a.setAttribute("tabindex", "-1");
        a.id = "switcher-option-" + index;
      });
    };
    var activate = function (index) {
      var all = options();
      all.forEach(function (option) { option.setAttribute("aria-selected", "false"); option.classList.remove("active"); });
      active = all.length ? Math.max(-1, Math.min(index, all.length - 1)) : -1;
      if (active < 0) { input.removeAttribute("aria-activedescendant"); return; }
      all[active].setAttribute("aria-selected", "true");
      all[active].classList.add("active");
      input.setAttribute("aria-activedescendant", all[active].id);
      all[active].scrollIntoView({ block: "nearest" });
    };
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", results.id);
    input.setAttribute("aria-expanded", "true");
    results.setAttribute("role", "listbox");
    results.setAttribute("aria-label", "Your accounts");
    asOptions();
    var original = results.cloneNode(true), originalMore = more.cloneNode(true);
    var item = function (text, cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      return span;
    };
    var show = function (answer, query) {
      results.replaceChildren();
      more.replaceChildren();
      answer.data.forEach(function (found) {
        var li = document.createElement("li"), a = document.createElement("a");
        a.href = found.url;
        var meta = (found.owner_email ? found.owner_email + " · " : "") + found.role;
        if (found.manager) meta += " · managed by " + found.manager;
        if (found.status !== "enabled") meta += " · " + found.status_label;
        a.append(item(found.name, "switcher-result-name"), item(meta, "switcher-result-meta"));
        li.append(a);
        results.append(li);
      });
      asOptions();
      activate(-1);
      input.setAttribute("aria-expanded", answer.data.length ? "true" : "false");
      if (!answer.data.length) {
        status.textContent = "No account matches “" + query + "”.";
        var none = document.createElement("span");
        none.className = "empty-state";
        none.textContent = status.textContent;
        more.append(none);
        return;
      }
      var total = answer.meta.total_results;
      status.textContent = total.toLocaleString("en") + (total === 1 ? " account matches." : " accounts match.");
      if (answer.meta.total_pages > 1) {
        var link = document.createElement("a");
        link.href = endpoint + "?q=" + encodeURIComponent(query);
        link.textContent = "All " + total.toLocaleString("en") + " matches";
        more.append(link);
      }
    };
    var restore = function () {
      results.replaceChildren.apply(results, Array.prototype.slice.call(original.cloneNode(true).childNodes));
      more.replaceChildren.apply(more, Array.prototype.slice.call(originalMore.cloneNode(true).childNodes));
      status.textContent = "";
      input.setAttribute("aria-expanded", "true");
      activate(-1);
    };
    var search = function () {
      var query = input.value.trim(), mine = ++asked;
      if (!query) { restore(); return; }
      fetch(endpoint + "?format=json&q=" + encodeURIComponent(query), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer && mine === asked) show(answer, query); })
        .catch(function () { /* the form still opens the search page */ });
    };
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, 150);
    });
    input.addEventListener("keydown", function (event) {
      var all = options();
      if (event.key === "ArrowDown") {
        event.preventDefault();
        activate(active + 1 < all.length ? active + 1 : all.length - 1);
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        activate(active - 1);
      } else if (event.key === "Enter" && active >= 0 && all[active]) {
        event.preventDefault();
        window.location.assign(all[active].href);
      } else if (event.key === "Escape") {
        event.preventDefault();
        if (active >= 0) { activate(-1); return; }
        switcher.open = false;
        switcher.querySelector("summary").focus();
      }
    });
    switcher.addEventListener("toggle", function () { if (switcher.open) input.focus(); });
  }
})();
