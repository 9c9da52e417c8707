// spadekit studio, palette mode (models that make a layout from class proportions, e.g. Semantic
// Palette): a slider per class sets the share of the image it should cover ("Sample a palette"
// draws realistic shares from the model). The server generates a layout; it becomes the label map
// on the canvas (undo brings the previous one back), so the brush edits it as usual and painting's
// own synthesis draws the photo with the Style card's seed.
//
// The shares always sum to 100 %: moving one slider rescales the others. The layout's own noise has
// its seed ("New layout" draws another); the achieved share of each class is shown after its slider.
"use strict";

(() => {
  const page = window.spadekitStudioPage;
  const modes = window.spadekitModes;
  const $ = (id) => document.getElementById(id);
  const DEBOUNCE_MS = 200;

  const st = {
    names: [], shares: [], achieved: null, seed: 1, sample: false, canSample: false,
    version: 0, shownVersion: -1, inFlight: false, timer: 0,
    requests: 0, results: 0, errors: 0, started: false, active: false, rows: [],
  };

  const freshSeed = () => Math.floor(Math.random() * 2 ** 31);

  function build(info) {
    const box = $("sliders");
    box.textContent = "";
    st.rows = info.classes.map((name, i) => {
      const row = document.createElement("label");
      row.className = "slider";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      const c = page.state.palette[i] || [0, 0, 0];
      swatch.style.background = `rgb(${c[0]},${c[1]},${c[2]})`;
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      const input = document.createElement("input");
      input.type = "range";
      input.min = "0"; input.max = "100"; input.step = "1"; input.value = "0";
      input.dataset.id = String(i);
      input.setAttribute("aria-label", `share of ${name}`);
      input.addEventListener("input", () => setShare(i, Number(input.value)));
      const out = document.createElement("output");
      const achieved = document.createElement("span");
      achieved.className = "achieved";
      achieved.title = "share of the generated layout";
      row.append(swatch, label, input, out, achieved);
      box.appendChild(row);
      return { input, out, achieved };
    });
  }

  function render() {
    st.rows.forEach((row, i) => {
      const share = st.shares[i] || 0;
      row.input.value = String(Math.round(share));
      row.out.textContent = `${Math.round(share)}%`;
      row.achieved.textContent = st.achieved ? `→ ${Math.round(100 * st.achieved[i])}%` : "";
    });
  }

  // Class i gets v %; the others share the rest in their current ratio (equally when all are 0).
  function setShare(i, v) {
    const others = st.shares.reduce((sum, s, j) => (j === i ? sum : sum + s), 0);
    const rest = 100 - v;
    const n = st.shares.length;
    st.shares = st.shares.map((s, j) => (j === i ? v : others > 0 ? (s * rest) / others : rest / (n - 1)));
    render();
    request(DEBOUNCE_MS, false);
  }

  // Start from the shares of the label map on the canvas.
  function sharesFromLabels() {
    const counts = new Array(st.names.length).fill(0);
    for (const id of page.state.ids) if (id < counts.length) counts[id]++;
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    return counts.map((c) => (100 * c) / total);
  }

  // ------------------------------------------------------------------ generation (latest wins)

  function request(delay, sample) {
    st.sample = sample;
    st.version++;
    clearTimeout(st.timer);
    st.timer = setTimeout(send, delay);
  }

  async function send() {
    if (!st.active || st.inFlight) return;
    const version = st.version;
    const body = { photo: false };
    if (st.sample) {
      st.seed = freshSeed(); // a new palette (and layout) every press
    } else {
      const total = st.shares.reduce((a, b) => a + b, 0);
      if (total <= 0) { page.status("Move a slider above 0 %", "warn"); st.shownVersion = version; return; }
      body.proportions = st.shares.map((s) => s / total);
    }
    body.seed = st.seed;
    st.inFlight = true;
    $("busy").hidden = false;
    st.requests++;
    try {
      const response = await fetch("/api/palette", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (!response.ok) {
        st.errors++;
        page.status(await page.errorText(response), "error");
      } else {
        const data = await response.json();
        if (data.sampled && st.version === version) st.shares = data.proportions.map((p) => 100 * p);
        st.achieved = data.achieved;
        render();
        if (data.notice) page.status(data.notice, "warn");
        if (st.version === version) {
          // The layout becomes the label map: painting's synthesis makes its photo.
          await page.loadIds(await page.idsFromColorPng(modes.dataUrlBlob(data.labels)));
          st.shownVersion = version;
          st.results++;
        }
      }
    } catch (err) {
      st.errors++;
      page.status(`Could not reach the server: ${err.message}`, "error");
    } finally {
      st.inFlight = false;
      $("busy").hidden = true;
      if (st.active && st.version !== version && st.version !== st.shownVersion) {
        clearTimeout(st.timer);
        st.timer = setTimeout(send, 0);
      }
    }
  }

  // ------------------------------------------------------------------ mode

  function enter() {
    const model = page.state.model;
    const info = model.mode_info.palette;
    st.active = true;
    if (page.state.paused) page.resume();
    if (st.started) return;
    st.started = true;
    st.names = info.classes.slice();
    st.canSample = !!info.sample;
    build(info);
    $("sample-palette").disabled = !st.canSample;
    $("sample-palette").title = st.canSample ? "Draw a palette from the model's training scenes"
      : "This model has no fitted palette mixture (spadekit palette fit adds one)";
    st.shares = sharesFromLabels();
    render();
    request(0, st.canSample);
  }

  function leave() {
    st.active = false;
    clearTimeout(st.timer);
  }

  $("sample-palette").addEventListener("click", () => request(0, true));
  $("new-layout").addEventListener("click", () => { st.seed = freshSeed(); request(0, false); });
  modes.register("palette", { enter, leave });

  // Read-only view for tests and the console.
  window.spadekitPalette = {
    get results() { return st.results; },
    get errors() { return st.errors; },
    get upToDate() { return !st.inFlight && st.shownVersion === st.version; },
    get seed() { return st.seed; },
    shares() { return st.shares.slice(); },
    achieved() { return st.achieved ? st.achieved.slice() : null; },
  };
})();
