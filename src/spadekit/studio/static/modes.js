// spadekit studio: the page's modes. The server lists them in GET /api/model (`modes`, the default
// first) from what the model can do: "layout" (paint a label map, studio.js) always, "boxes" for
// models that synthesize from object boxes (boxes.js), "palette" for models that make a layout from
// class proportions (palette.js). Elements with `data-modes="a b"` are shown in those modes only.
"use strict";

(() => {
  const page = window.spadekitStudioPage;
  const LABELS = { layout: "Paint", boxes: "Boxes", palette: "Palette" };
  const registry = {
    layout: { enter() { if (page.state.paused) page.resume(); } },
  };
  let current = null;

  function show(mode) {
    for (const el of document.querySelectorAll("[data-modes]")) el.hidden = !el.dataset.modes.split(/\s+/).includes(mode);
    for (const b of document.querySelectorAll("#modes button")) {
      const on = b.dataset.mode === mode;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
    document.body.dataset.mode = mode;
  }

  async function switchTo(mode) {
    if (mode === current || !registry[mode]) return;
    const previous = current;
    current = mode;
    if (previous && registry[previous].leave) registry[previous].leave();
    show(mode);
    await registry[mode].enter();
  }

  // A PNG the server sent as a data: URL, as a Blob (the page's CSP lets it fetch nothing but its server).
  function dataUrlBlob(url) {
    const comma = url.indexOf(",");
    const bytes = Uint8Array.from(atob(url.slice(comma + 1)), (c) => c.charCodeAt(0));
    return new Blob([bytes], { type: url.slice(5, comma).split(";")[0] });
  }

  window.spadekitModes = {
    // Each mode script registers {enter(), leave()}; enter pauses or resumes painting's syntheses.
    register(name, mode) { registry[name] = mode; },
    switchTo,
    dataUrlBlob,
    get current() { return current; },
  };

  page.ready.then((model) => {
    const modes = (model.modes || ["layout"]).filter((m) => registry[m]);
    const nav = document.getElementById("modes");
    nav.textContent = "";
    for (const mode of modes) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.mode = mode;
      b.textContent = LABELS[mode] || mode;
      b.addEventListener("click", () => switchTo(mode));
      nav.appendChild(b);
    }
    nav.hidden = modes.length < 2;
    return switchTo(modes[0] || "layout");
  }).catch((err) => page.status(`Studio failed to start: ${err.message}`, "error"));
})();
