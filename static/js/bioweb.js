// bioweb dashboard: small progressive enhancements. Every page works without this file.
// Served from /static under a CSP with no inline script.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="element-id">. Shown only when JS can copy.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  function setupCopy() {
    var status = document.querySelector("[data-copy-status]");
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (!target) { return; }
      var label = target.getAttribute("aria-labelledby");
      var name = label ? document.getElementById(label).textContent : "value";
      button.hidden = false;
      button.setAttribute("aria-label", "Copy " + name.toLowerCase());
      button.addEventListener("click", function () {
        copyText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
          if (status) { status.textContent = name + " copied to the clipboard."; }
          window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
        }, function () {
          // Select it so a long-press or Ctrl+C still works.
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          if (status) { status.textContent = "Copying is blocked here; the text is selected, copy it by hand."; }
        });
      });
    });
  }

  // One-time secrets: wipe them from the page when leaving it, so the back button (or the
  // back/forward cache) never brings a secret back on screen.
  function setupOncePages() {
    if (!document.querySelector("[data-once-page]")) { return; }
    window.addEventListener("pagehide", function () {
      document.querySelectorAll("[data-once-secret]").forEach(function (node) {
        node.textContent = "Hidden: it was shown only once.";
        var button = document.querySelector('button[data-copy="' + node.id + '"]');
        if (button) { button.hidden = true; }
      });
    });
  }

  // Forms that create something: one click, one submission.
  function setupOnceForms() {
    document.querySelectorAll("form[data-once-form]").forEach(function (form) {
      form.addEventListener("submit", function () {
        window.setTimeout(function () {
          form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });
  }

  // Device code suggestions: fill the <datalist> from /devices/codes?q=... as the person types.
  function setupSuggestions() {
    document.querySelectorAll("input[data-suggest-url]").forEach(function (input) {
      var list = document.getElementById(input.getAttribute("list"));
      var output = document.getElementById(input.getAttribute("data-product-output"));
      var url = input.getAttribute("data-suggest-url");
      var timer = null;
      var latest = 0;
      if (!list) { return; }
      function update() {
        var query = input.value.trim();
        var ticket = ++latest;
        if (!query) { list.replaceChildren(); if (output) { output.textContent = ""; } return; }
        fetch(url + "?q=" + encodeURIComponent(query), { headers: { Accept: "application/json" }, credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : []; })
          .then(function (entries) {
            if (ticket !== latest || !Array.isArray(entries)) { return; }
            var options = entries.map(function (entry) {
              var option = document.createElement("option");
              option.value = entry.code;
              option.label = entry.product_name;
              option.textContent = entry.product_name;
              return option;
            });
            list.replaceChildren.apply(list, options);
            if (output) {
              var exact = entries.find(function (e) { return e.code.toLowerCase() === query.toLowerCase(); });
              output.textContent = exact ? exact.code + " is " + exact.product_name + "." : "";
            }
          })
          .catch(function () { /* suggestions are a convenience; the form still validates the code */ });
      }
      input.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(update, 120);
      });
      if (input.value) { update(); }
    });
  }

  // "Show" buttons beside password fields (current guidance: let people check what they typed).
  function setupPasswordToggles() {
    document.querySelectorAll("button[data-password-toggle]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-password-toggle"));
      if (!input) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        var show = input.type === "password";
        input.type = show ? "text" : "password";
        button.textContent = show ? "Hide" : "Show";
        button.setAttribute("aria-pressed", show ? "true" : "false");
      });
      // Never submit it as visible text (browsers may remember text inputs).
      if (input.form) {
        input.form.addEventListener("submit", function () { input.type = "password"; });
      }
    });
  }

  function start() {
    setupCopy();
    setupOncePages();
    setupOnceForms();
    setupSuggestions();
    setupPasswordToggles();
    var summary = document.querySelector(".error-summary");
    if (summary) { summary.focus(); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
