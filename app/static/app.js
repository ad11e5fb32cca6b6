// Scheduler UI: the few things HTML and htmx do not do on their own. No dependencies.
(function () {
  "use strict";

  // 1. The viewer's time zone, for the server to show times in: the `tz` cookie.
  //    On the first visit (or after travelling) set it and reload once to show local times.
  function cookie(name) {
    const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  }
  let zone = null;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    zone = null;
  }
  if (zone && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone) && cookie("tz") !== zone) {
    document.cookie = "tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
    if (document.documentElement.dataset.tz !== zone) {
      window.location.reload();
    }
  }

  // 2. Short messages: the server sends an `HX-Trigger: {"show-message": "…"}` header, and
  //    error answers in plain text; both are shown in the #toast status region, as text.
  let toastTimer = null;
  function showMessage(text, isError) {
    const toast = document.getElementById("toast");
    if (!toast || !text) return;
    toast.textContent = text;
    toast.classList.toggle("toast-error", Boolean(isError));
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.hidden = true; }, isError ? 8000 : 4000);
  }
  document.addEventListener("show-message", function (event) {
    showMessage(event.detail && event.detail.value, false);
  });

  // 3. Error answers: an HTML answer is a page (or a form with its errors): show it.
  //    A plain-text answer is a message: toast it and leave the page as it is.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const xhr = event.detail.xhr;
    if (xhr.status < 400) return;
    const type = xhr.getResponseHeader("Content-Type") || "";
    if (type.startsWith("text/html")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    } else {
      event.detail.shouldSwap = false;
      showMessage(xhr.responseText.slice(0, 300) || "Error " + xhr.status, true);
    }
  });
  document.addEventListener("htmx:sendError", function () {
    showMessage("The server did not answer. Is it running?", true);
  });

  // 4. The job form's preview refreshes as the rule changes, also on the blur a press on
  //    "Create job" causes. While a pointer is down that refresh waits for the release: it
  //    must neither replace nor move the control the press began on (a press on one spot
  //    and a release on another is no click, and the form would not be sent). The submit
  //    button is never swapped (nor disabled): it points at the preview's error in place.
  let pressed = false;
  let heldPreview = null;
  function followPreview() {
    const preview = document.getElementById("preview");
    const submit = document.getElementById("submit");
    if (!preview || !submit || !preview.dataset.valid) return;
    if (preview.dataset.valid === "true") {
      submit.removeAttribute("aria-describedby");
    } else {
      submit.setAttribute("aria-describedby", "preview-error");
    }
  }
  function released() {
    setTimeout(function () { // after the click this release makes
      pressed = false;
      if (heldPreview !== null && document.getElementById("preview")) {
        const text = heldPreview;
        heldPreview = null;
        htmx.swap("#preview", text, { swapStyle: "outerHTML" });
        followPreview();
      }
    }, 0);
  }
  document.addEventListener("pointerdown", function () { pressed = true; }, true);
  document.addEventListener("pointerup", released, true);
  document.addEventListener("pointercancel", released, true);
  document.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (!pressed || !target || target.id !== "preview" || event.detail.xhr.status >= 400) return;
    event.detail.shouldSwap = false;
    heldPreview = event.detail.xhr.responseText;
  });
  document.addEventListener("htmx:afterSettle", followPreview);

  // 5. After a boosted navigation, move focus to the new page's content (keyboard users);
  //    after a form came back with errors, to the first field at fault.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!event.detail.boosted || event.detail.target !== document.body) return;
    const error = document.querySelector("form .field-error:not(:empty)");
    const field = error && error.closest(".field");
    const control = field && field.querySelector("input, select, textarea");
    if (control) {
      control.focus();
    } else {
      const main = document.getElementById("main");
      if (main) main.focus({ preventScroll: true });
    }
  });

  // 6. The jobs list's selection: how many are ticked, a tick for the whole page, and the
  //    bulk actions usable only while something is ticked.
  function followSelection() {
    const form = document.getElementById("bulk-form");
    if (!form) return;
    const boxes = Array.from(document.querySelectorAll('input[name="ids"][form="bulk-form"]'));
    const ticked = boxes.filter((box) => box.checked).length;
    const all = document.getElementById("select-all");
    if (all) {
      all.checked = ticked > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    document.getElementById("bulk-count").textContent =
      ticked ? ticked + " selected" : "None selected";
    form.querySelectorAll("button").forEach((button) => { button.disabled = ticked === 0; });
  }
  document.addEventListener("change", function (event) {
    const box = event.target;
    if (box.id === "select-all") {
      document.querySelectorAll('input[name="ids"][form="bulk-form"]').forEach((one) => {
        one.checked = box.checked;
      });
    }
    if (box.id === "select-all" || box.name === "ids") followSelection();
  });
  document.addEventListener("htmx:load", followSelection);
  document.addEventListener("DOMContentLoaded", followSelection);

  // 7. Live blocks poll conditionally: each poll sends back the ETag of what the block shows
  //    (If-None-Match), and the server answers 304 without a body when nothing changed
  //    (app/ui/live.py). htmx would swap a 304's empty body in (it swaps every 2xx/3xx
  //    answer but 204), so the block is left as it is. ETags are kept per block and URL.
  const etags = new Map();
  function etagKey(elt, path) {
    return elt && elt.id ? elt.id + " " + path : null;
  }
  document.addEventListener("htmx:configRequest", function (event) {
    const key = etagKey(event.detail.elt, event.detail.path);
    if (event.detail.verb === "get" && key && etags.has(key)) {
      event.detail.headers["If-None-Match"] = etags.get(key);
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    const xhr = event.detail.xhr;
    const config = event.detail.requestConfig;
    if (xhr.status === 304) {
      event.detail.shouldSwap = false;
      return;
    }
    const key = config && config.verb === "get" && etagKey(config.elt, config.path);
    const etag = xhr.getResponseHeader("ETag");
    if (key && etag && xhr.status === 200) etags.set(key, etag);
  });
})();
