// The bulk onboarding progress page: polls the upload's JSON status and updates the counts; when the
// task has finished, reloads the page once to show the rows that failed. Without JavaScript the page
// has a Refresh link.
(function () {
  var box = document.getElementById("onboarding-progress");
  if (!box || !window.fetch || box.dataset.status === "done") return;
  var bar = box.querySelector("progress");
  var count = function (name) { return box.querySelector("[data-count=" + name + "]"); };

  var poll = function () {
    fetch(box.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (state) {
        count("done").textContent = state.done;
        count("failed").textContent = state.failed;
        count("total").textContent = state.total;
        bar.max = state.total;
        bar.value = state.done + state.failed;
        if (state.status === "done") window.location.reload();
        else window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  };
  window.setTimeout(poll, 1000);
})();
