// The usage upload form with a progress bar: posts with XMLHttpRequest, then shows the server's
// answer (the page with its message, or the error report). Without JavaScript the form posts as usual.
(function () {
  var form = document.getElementById("usage-upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  var input = form.querySelector("input[type=file]");
  var box = form.querySelector(".upload-progress");
  var bar = box.querySelector("progress");
  var status = box.querySelector(".upload-status");
  var button = form.querySelector("button[type=submit]");
  var limit = parseInt(input.dataset.maxBytes, 10);
  var megabytes = function (bytes) { return (bytes / 1048576).toFixed(1); };

  var show = function (text, percent) {
    box.hidden = false;
    status.textContent = text;
    if (percent === null) bar.removeAttribute("value"); else bar.value = percent;
  };

  form.addEventListener("submit", function (event) {
    var file = input.files[0];
    if (!file) return; // the server says what is missing
    event.preventDefault();
    if (limit && file.size > limit) {
      show("This file is " + megabytes(file.size) + " MB; the limit is " + megabytes(limit) + " MB. Split it into smaller files.", 0);
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        var percent = Math.round((100 * e.loaded) / e.total);
        show("Uploading… " + percent + " %", percent);
      }
    };
    xhr.upload.onload = function () { show("Processing…", null); };
    xhr.onload = function () {
      // A success redirects (followed by the browser) to this page with its message.
      if (xhr.responseURL) window.history.replaceState(null, "", xhr.responseURL);
      document.open();
      document.write(xhr.responseText);
      document.close();
    };
    xhr.onerror = function () {
      button.disabled = false;
      show("The upload failed: check the connection and try again.", 0);
    };
    button.disabled = true;
    show("Uploading… 0 %", 0);
    xhr.send(new FormData(form));
  });
})();
