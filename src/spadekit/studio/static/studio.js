// spadekit studio: paint a label map, watch the model turn it into a photo.
//
// The painting lives in class-id space: `ids` holds one class id per model pixel and the canvas
// only shows their palette colours. The label map sent to the server is the canvas as a PNG, which
// holds exactly the palette colours (no smoothing, no alpha), so the server maps it back to the
// same ids. At most one synthesis request is in flight; when it returns and the scene has changed
// meanwhile, the latest scene is sent (latest wins), so painting never waits for the model.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const UNDO_LIMIT = 60;
  const DEBOUNCE_MS = 120;       // after a stroke, fill, undo...
  const LIVE_DEBOUNCE_MS = 350;  // while a stroke goes on and the pointer rests

  const state = {
    model: null,
    width: 0,
    height: 0,
    palette: [],       // [[r, g, b]] by id
    names: [],
    ids: null,         // Uint16Array(width * height)
    image: null,       // ImageData shown on the label canvas
    current: 1,        // class painted by the brush and fill
    eraseClass: 0,     // class painted by the eraser and Clear
    tool: "brush",
    size: 12,
    undo: [],
    redo: [],
    seed: 1,
    region: null,      // {cls, seed}: that class's pixels take the latent of their own seed
    style: null,       // File
    version: 0,        // bumped on every change of labels, seed or style
    shownVersion: -1,  // version of the result on screen
    inFlight: false,
    timer: 0,
    requests: 0,
    results: 0,
    errors: 0,
    resultBlob: null,
    resultSeed: null,
    resultRegion: null,
    paused: false,     // another mode (boxes.js) owns the result: painting sends nothing
  };

  const labelCanvas = $("labels");
  const labelCtx = labelCanvas.getContext("2d", { willReadFrequently: false });
  const cursorCanvas = $("cursor");
  const cursorCtx = cursorCanvas.getContext("2d");
  const resultImg = $("result");

  // ------------------------------------------------------------------ messages

  let statusTimer = 0;
  function status(text, kind = "info", sticky = false) {
    const el = $("status");
    el.textContent = text;
    el.dataset.kind = kind;
    clearTimeout(statusTimer);
    if (!sticky && kind !== "error") statusTimer = setTimeout(() => { el.textContent = ""; }, 4000);
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.error || JSON.stringify(body);
    } catch (_) {
      return `${response.status} ${response.statusText}`;
    }
  }

  // ------------------------------------------------------------------ palette and canvas

  function colorKey(r, g, b) { return (r << 16) | (g << 8) | b; }

  function paintPixel(i, cls) {
    state.ids[i] = cls;
    const c = state.palette[cls] || [0, 0, 0];
    const d = state.image.data;
    const o = i * 4;
    d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = 255;
  }

  function repaintAll() {
    const n = state.width * state.height;
    for (let i = 0; i < n; i++) paintPixel(i, state.ids[i]);
    flush();
  }

  let flushQueued = false;
  function requestFlush() {
    if (flushQueued) return;
    flushQueued = true;
    requestAnimationFrame(() => { flushQueued = false; flush(); });
  }
  function flush() { labelCtx.putImageData(state.image, 0, 0); }

  function setIds(ids) {
    state.ids.set(ids);
    repaintAll();
  }

  // ------------------------------------------------------------------ history

  function snapshot() {
    state.undo.push(state.ids.slice());
    if (state.undo.length > UNDO_LIMIT) state.undo.shift();
    state.redo.length = 0;
    updateHistoryButtons();
  }

  function undo() {
    if (!state.undo.length) return;
    state.redo.push(state.ids.slice());
    setIds(state.undo.pop());
    changed();
    updateHistoryButtons();
  }

  function redo() {
    if (!state.redo.length) return;
    state.undo.push(state.ids.slice());
    setIds(state.redo.pop());
    changed();
    updateHistoryButtons();
  }

  function updateHistoryButtons() {
    $("undo").disabled = state.undo.length === 0;
    $("redo").disabled = state.redo.length === 0;
  }

  // ------------------------------------------------------------------ painting

  function stamp(cx, cy, cls) {
    const r = Math.max(state.size / 2, 0.5);
    const W = state.width, H = state.height;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
    const r2 = r * r;
    for (let y = y0; y <= y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2) paintPixel(y * W + x, cls);
      }
    }
    // The pixel under the pointer is always painted, whatever the brush size.
    const px = Math.floor(cx), py = Math.floor(cy);
    if (px >= 0 && py >= 0 && px < W && py < H) paintPixel(py * W + px, cls);
  }

  function line(ax, ay, bx, by, cls) {
    const dist = Math.hypot(bx - ax, by - ay);
    const step = Math.max(0.5, state.size / 4);
    const n = Math.max(1, Math.ceil(dist / step));
    for (let k = 1; k <= n; k++) stamp(ax + ((bx - ax) * k) / n, ay + ((by - ay) * k) / n, cls);
  }

  // Scanline flood fill of the 4-connected region of the clicked class.
  function floodFill(sx, sy, cls) {
    const W = state.width, H = state.height, ids = state.ids;
    const x = Math.floor(sx), y = Math.floor(sy);
    if (x < 0 || y < 0 || x >= W || y >= H) return false;
    const target = ids[y * W + x];
    if (target === cls) return false;
    const stack = [x, y];
    while (stack.length) {
      const py = stack.pop(), px0 = stack.pop();
      let left = px0;
      const row = py * W;
      if (ids[row + left] !== target) continue;
      while (left > 0 && ids[row + left - 1] === target) left--;
      let right = px0;
      while (right < W - 1 && ids[row + right + 1] === target) right++;
      for (let px = left; px <= right; px++) paintPixel(row + px, cls);
      for (const ny of [py - 1, py + 1]) {
        if (ny < 0 || ny >= H) continue;
        const nrow = ny * W;
        let inRun = false;
        for (let px = left; px <= right; px++) {
          const match = ids[nrow + px] === target;
          if (match && !inRun) stack.push(px, ny);
          inRun = match;
        }
      }
    }
    return true;
  }

  function toModel(event) {
    const rect = labelCanvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * state.width,
      ((event.clientY - rect.top) / rect.height) * state.height,
    ];
  }

  function classAt(x, y) {
    const px = Math.floor(x), py = Math.floor(y);
    if (px < 0 || py < 0 || px >= state.width || py >= state.height) return null;
    return state.ids[py * state.width + px];
  }

  let stroke = null; // {pointerId, x, y, cls}

  function onPointerDown(event) {
    if (!state.ids || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    const [x, y] = toModel(event);
    if (event.altKey) {
      const cls = classAt(x, y);
      if (cls !== null) selectClass(cls);
      return;
    }
    if (state.tool === "fill") {
      const before = state.ids.slice();
      if (floodFill(x, y, state.current)) {
        state.undo.push(before);
        if (state.undo.length > UNDO_LIMIT) state.undo.shift();
        state.redo.length = 0;
        updateHistoryButtons();
        flush();
        changed(DEBOUNCE_MS);
      }
      return;
    }
    snapshot();
    const cls = state.tool === "eraser" ? state.eraseClass : state.current;
    labelCanvas.setPointerCapture(event.pointerId);
    stroke = { pointerId: event.pointerId, x, y, cls };
    stamp(x, y, cls);
    requestFlush();
    changed(LIVE_DEBOUNCE_MS);
  }

  function onPointerMove(event) {
    drawCursor(event);
    if (!stroke || event.pointerId !== stroke.pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      const [x, y] = toModel(e);
      line(stroke.x, stroke.y, x, y, stroke.cls);
      stroke.x = x; stroke.y = y;
    }
    requestFlush();
    changed(LIVE_DEBOUNCE_MS);
  }

  function onPointerUp(event) {
    if (!stroke || event.pointerId !== stroke.pointerId) return;
    stroke = null;
    flush();
    changed(DEBOUNCE_MS);
  }

  function drawCursor(event) {
    const rect = cursorCanvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    if (cursorCanvas.width !== Math.round(rect.width * dpr) || cursorCanvas.height !== Math.round(rect.height * dpr)) {
      cursorCanvas.width = Math.round(rect.width * dpr);
      cursorCanvas.height = Math.round(rect.height * dpr);
    }
    cursorCtx.clearRect(0, 0, cursorCanvas.width, cursorCanvas.height);
    const [mx, my] = toModel(event);
    const cls = classAt(mx, my);
    $("canvas-wrap").title = cls === null ? "" : `${state.names[cls]} (${cls})`;
    if (event.type === "pointerleave" || state.tool === "fill" || event.pointerType === "touch") return;
    const scale = cursorCanvas.width / state.width;
    const r = Math.max(state.size / 2, 0.5) * scale;
    cursorCtx.lineWidth = Math.max(1, dpr);
    cursorCtx.strokeStyle = "rgba(0,0,0,0.7)";
    cursorCtx.beginPath();
    cursorCtx.arc(mx * scale, my * scale, r, 0, 2 * Math.PI);
    cursorCtx.stroke();
    cursorCtx.strokeStyle = "rgba(255,255,255,0.9)";
    cursorCtx.beginPath();
    cursorCtx.arc(mx * scale, my * scale, r + cursorCtx.lineWidth, 0, 2 * Math.PI);
    cursorCtx.stroke();
  }

  // ------------------------------------------------------------------ synthesis (latest wins)

  function changed(delay = DEBOUNCE_MS) {
    state.version++;
    clearTimeout(state.timer);
    state.timer = setTimeout(synthesize, delay);
  }

  function canvasBlob() {
    flush();
    return new Promise((resolve, reject) =>
      labelCanvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode the label map"))), "image/png"));
  }

  async function synthesize() {
    if (state.inFlight || !state.ids || state.paused) return; // the running request re-sends when it ends
    const version = state.version;
    state.inFlight = true;
    $("busy").hidden = false;
    state.requests++;
    try {
      const form = new FormData();
      form.append("labels", await canvasBlob(), "labels.png");
      if (state.model.capabilities.seed) form.append("seed", String(state.seed));
      // A region whose class is no longer painted is left out (it comes back when the class does).
      if (state.region && state.model.capabilities.region_noise && state.ids.includes(state.region.cls)) {
        form.append("region_class", String(state.region.cls));
        form.append("region_seed", String(state.region.seed));
      }
      if (state.style) form.append("style", state.style, state.style.name || "style.png");
      const started = performance.now();
      const response = await fetch("/api/synthesize", { method: "POST", body: form });
      if (!response.ok) {
        state.errors++;
        status(await errorText(response), "error");
      } else {
        const blob = await response.blob();
        const url = URL.createObjectURL(blob);
        await new Promise((resolve) => { resultImg.onload = resolve; resultImg.onerror = resolve; resultImg.src = url; });
        if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
        state.resultUrl = url;
        state.resultBlob = blob;
        state.resultSeed = response.headers.get("X-Seed");
        const regionSeed = response.headers.get("X-Region-Seed");
        state.resultRegion = regionSeed ? `class${response.headers.get("X-Region-Class")}-region${regionSeed}` : null;
        state.shownVersion = version;
        state.results++;
        const ms = Math.round(performance.now() - started);
        const model = response.headers.get("X-Synthesis-Ms");
        $("result-info").textContent = `${ms} ms${model ? ` (model ${Math.round(Number(model))} ms)` : ""}`;
        if ($("status").dataset.kind === "error") status("");
      }
    } catch (err) {
      state.errors++;
      status(`Could not reach the server: ${err.message}`, "error");
    } finally {
      state.inFlight = false;
      $("busy").hidden = true;
      // Latest wins: whatever changed while this request ran is sent now.
      if (state.version !== version && state.version !== state.shownVersion) {
        clearTimeout(state.timer);
        state.timer = setTimeout(synthesize, stroke ? LIVE_DEBOUNCE_MS : 0);
      }
    }
  }

  // ------------------------------------------------------------------ loading label maps

  // Decode a colour-coded PNG (palette colours only) into ids, without colour management.
  async function idsFromColorPng(blob) {
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const canvas = document.createElement("canvas");
    canvas.width = state.width; canvas.height = state.height;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0, state.width, state.height);
    const data = ctx.getImageData(0, 0, state.width, state.height).data;
    const lookup = new Map();
    state.palette.forEach((c, i) => lookup.set(colorKey(c[0], c[1], c[2]), i)); // sparse: 255 = don't care
    const ids = new Uint16Array(state.width * state.height);
    let unknown = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = lookup.get(colorKey(data[i * 4], data[i * 4 + 1], data[i * 4 + 2]));
      if (id === undefined) { unknown++; ids[i] = state.eraseClass; } else ids[i] = id;
    }
    if (unknown) status(`${unknown} pixel(s) had no class colour and were set to the background class`, "warn");
    return ids;
  }

  async function loadIds(ids) {
    snapshot();
    setIds(ids);
    changed(0);
  }

  async function loadExample() {
    const url = $("examples").value;
    if (!url) return;
    const response = await fetch(url);
    if (!response.ok) { status(await errorText(response), "error"); return; }
    await loadIds(await idsFromColorPng(await response.blob()));
  }

  // The server reads the upload exactly as `spadekit synthesize` would (ids or palette colours,
  // any size) and returns it colour-coded at the model size.
  async function uploadLabels(file) {
    const form = new FormData();
    form.append("labels", file, file.name);
    form.append("format", "colors");
    const response = await fetch("/api/labels", { method: "POST", body: form });
    if (!response.ok) { status(await errorText(response), "error"); return; }
    await loadIds(await idsFromColorPng(await response.blob()));
    status(`Loaded ${file.name}`);
  }

  // ------------------------------------------------------------------ downloads

  function download(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function downloadIds() {
    const form = new FormData();
    form.append("labels", await canvasBlob(), "labels.png");
    form.append("format", "ids");
    const response = await fetch("/api/labels", { method: "POST", body: form });
    if (!response.ok) { status(await errorText(response), "error"); return; }
    download(await response.blob(), "labels-ids.png");
  }

  // ------------------------------------------------------------------ controls

  function selectClass(cls) {
    state.current = cls;
    const c = state.palette[cls];
    $("current-swatch").style.background = `rgb(${c[0]},${c[1]},${c[2]})`;
    $("current-name").textContent = `${state.names[cls]} (${cls})`;
    for (const li of $("classes").children) {
      const on = Number(li.dataset.id) === cls;
      li.classList.toggle("selected", on);
      li.setAttribute("aria-selected", on ? "true" : "false");
    }
    if (state.tool === "eraser") setTool("brush");
  }

  function setTool(tool) {
    state.tool = tool;
    for (const b of document.querySelectorAll(".tool")) {
      const on = b.dataset.tool === tool;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
    labelCanvas.dataset.tool = tool;
  }

  function setSize(size) {
    state.size = Math.max(1, Math.min(64, Math.round(size)));
    $("brush-size").value = String(state.size);
    $("brush-size-value").textContent = String(state.size);
  }

  function setSeed(seed) {
    state.seed = seed;
    $("seed").value = String(seed);
    setRegion(null);  // a new image: no region keeps its own look
    changed(0);
  }

  function setRegion(region) {
    state.region = region;
    $("region-reset").hidden = !region;
    $("region-info").textContent = region
      ? `${state.names[region.cls]}: region seed ${region.seed} (the rest: seed ${state.seed})`
      : "Select a class, then draw a new look for its pixels only.";
  }

  function newRegionVariation() {
    const cls = state.current;
    if (!state.ids.includes(cls)) {
      status(`Paint some ${state.names[cls]} first: the new variation applies to its pixels`, "warn");
      return;
    }
    setRegion({ cls, seed: Math.floor(Math.random() * 2 ** 31) });
    changed(0);
  }

  function buildClassList() {
    const list = $("classes");
    list.textContent = "";
    state.names.forEach((name, id) => {
      const li = document.createElement("li");
      li.dataset.id = String(id);
      li.dataset.search = `${name.toLowerCase()} ${id}`;
      li.setAttribute("role", "option");
      li.tabIndex = 0;
      const sw = document.createElement("span");
      sw.className = "swatch";
      const c = state.palette[id];
      sw.style.background = `rgb(${c[0]},${c[1]},${c[2]})`;
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      const num = document.createElement("span");
      num.className = "id";
      num.textContent = String(id);
      li.append(sw, label, num);
      li.addEventListener("click", () => selectClass(id));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectClass(id); } });
      list.appendChild(li);
    });
    const erase = $("erase-class");
    erase.textContent = "";
    state.names.forEach((name, id) => erase.add(new Option(`${id} · ${name}`, String(id))));
  }

  function filterClasses(query) {
    const q = query.trim().toLowerCase();
    for (const li of $("classes").children) li.hidden = q !== "" && !li.dataset.search.includes(q);
  }

  function bindControls() {
    labelCanvas.addEventListener("pointerdown", onPointerDown);
    labelCanvas.addEventListener("pointermove", onPointerMove);
    labelCanvas.addEventListener("pointerup", onPointerUp);
    labelCanvas.addEventListener("pointercancel", onPointerUp);
    labelCanvas.addEventListener("pointerleave", drawCursor);
    labelCanvas.addEventListener("contextmenu", (e) => e.preventDefault());

    for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
    $("brush-size").addEventListener("input", (e) => setSize(Number(e.target.value)));
    for (const b of $("size-presets").querySelectorAll("button")) b.addEventListener("click", () => setSize(Number(b.dataset.size)));
    $("erase-class").addEventListener("change", (e) => { state.eraseClass = Number(e.target.value); });
    $("undo").addEventListener("click", undo);
    $("redo").addEventListener("click", redo);
    $("clear").addEventListener("click", () => { snapshot(); setIds(new Uint16Array(state.ids.length).fill(state.eraseClass)); changed(); });
    $("class-search").addEventListener("input", (e) => filterClasses(e.target.value));
    $("class-search").addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      const first = [...$("classes").children].find((li) => !li.hidden);
      if (first) selectClass(Number(first.dataset.id));
    });

    $("load-example").addEventListener("click", loadExample);
    $("upload-labels").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) await uploadLabels(file);
    });

    $("seed").addEventListener("change", (e) => {
      const seed = Math.floor(Number(e.target.value));
      if (Number.isFinite(seed) && seed >= 0) setSeed(seed); else e.target.value = String(state.seed);
    });
    $("variation").addEventListener("click", () => setSeed(Math.floor(Math.random() * 2 ** 31)));
    $("region-variation").addEventListener("click", newRegionVariation);
    $("region-reset").addEventListener("click", () => { setRegion(null); changed(0); });
    $("upload-style").addEventListener("change", (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (!file) return;
      state.style = file;
      const thumb = $("style-thumb");
      if (thumb.src) URL.revokeObjectURL(thumb.src);
      thumb.src = URL.createObjectURL(file);
      $("style-preview").hidden = false;
      changed(0);
    });
    $("remove-style").addEventListener("click", () => {
      state.style = null;
      $("style-preview").hidden = true;
      changed(0);
    });

    $("download-image").addEventListener("click", () => {
      if (!state.resultBlob) return;
      const region = state.resultRegion ? `-${state.resultRegion}` : "";
      download(state.resultBlob, `spadekit-seed${state.resultSeed ?? state.seed}${region}.png`);
    });
    $("download-labels").addEventListener("click", async () => download(await canvasBlob(), "labels.png"));
    $("download-ids").addEventListener("click", downloadIds);

    document.addEventListener("keydown", (e) => {
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key.toLowerCase() === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); return; }
      if (mod && e.key.toLowerCase() === "y") { e.preventDefault(); redo(); return; }
      if (typing || mod || e.altKey) return;
      if (e.key === "b") setTool("brush");
      else if (e.key === "f") setTool("fill");
      else if (e.key === "e") setTool("eraser");
      else if (e.key === "[") setSize(state.size - (state.size > 8 ? 4 : 1));
      else if (e.key === "]") setSize(state.size + (state.size >= 8 ? 4 : 1));
    });
  }

  // ------------------------------------------------------------------ start

  async function start() {
    bindControls();
    const response = await fetch("/api/model");
    if (!response.ok) { status(`Could not load the model description: ${await errorText(response)}`, "error"); return; }
    const model = await response.json();
    state.model = model;
    [state.width, state.height] = model.size;
    state.palette = model.palette.slice();
    state.names = model.classes.slice();
    const classCount = state.names.length;
    if (model.capabilities.dontcare && model.dontcare_color) {
      // Label value 255 marks pixels the model should not care about; it can be painted too.
      state.palette[255] = model.dontcare_color;
      state.names[255] = "don't care";
    }
    document.title = `spadekit studio · ${model.name}`;
    $("model-name").textContent = `${model.name} · ${classCount} classes · ${state.width}×${state.height}`;

    labelCanvas.width = state.width;
    labelCanvas.height = state.height;
    for (const wrap of [$("canvas-wrap"), $("result-wrap")]) {
      wrap.style.aspectRatio = `${state.width} / ${state.height}`;
      // Both pictures stay on screen with the controls under them: cap the width by the height left.
      wrap.style.maxWidth = `max(240px, calc((100vh - 290px) * ${state.width / state.height}))`;
    }
    state.ids = new Uint16Array(state.width * state.height);
    state.image = labelCtx.createImageData(state.width, state.height);

    buildClassList();
    selectClass(Math.min(1, classCount - 1));
    setTool("brush");
    setSize(Math.max(2, Math.round(state.width / 16)));
    updateHistoryButtons();

    $("style-box").hidden = !model.capabilities.style_image;
    $("style-note").hidden = !!model.capabilities.style_image;
    $("seed").disabled = !model.capabilities.seed;
    $("variation").disabled = !model.capabilities.seed;
    $("seed-note").hidden = !!model.capabilities.seed;
    $("region-box").hidden = !model.capabilities.region_noise;
    setRegion(null);

    const examples = $("examples");
    for (const ex of model.examples) examples.add(new Option(ex.name, ex.url));
    $("load-example").disabled = model.examples.length === 0;
    examples.disabled = model.examples.length === 0;

    repaintAll();
    if (model.examples.length) await loadExample();
    else changed(0);
    state.undo.length = 0;
    updateHistoryButtons();
    resolveReady(model);
  }

  // Another mode's result (boxes.js): shown, and downloaded by "Image", like a painted scene's.
  async function showImage(blob, seed, info) {
    const url = URL.createObjectURL(blob);
    await new Promise((resolve) => { resultImg.onload = resolve; resultImg.onerror = resolve; resultImg.src = url; });
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = url;
    state.resultBlob = blob;
    state.resultSeed = seed;
    $("result-info").textContent = info || "";
    if ($("status").dataset.kind === "error") status("");
  }

  // What the mode scripts (modes.js, boxes.js, palette.js) build on; they load after this file.
  let resolveReady;
  window.spadekitStudioPage = {
    ready: new Promise((resolve) => { resolveReady = resolve; }),
    state, status, errorText, download, idsFromColorPng, loadIds, showImage, selectClass,
    pause() { state.paused = true; clearTimeout(state.timer); },
    resume() { state.paused = false; changed(0); },
  };

  // Read-only view for tests and the console.
  window.spadekitStudio = {
    get ready() { return state.ids !== null && state.model !== null; },
    get requests() { return state.requests; },
    get results() { return state.results; },
    get errors() { return state.errors; },
    get busy() { return state.inFlight; },
    get upToDate() { return !state.inFlight && state.shownVersion === state.version; },
    get size() { return [state.width, state.height]; },
    get seed() { return state.seed; },
    labels() { return Array.from(state.ids); },
    async resultPng() { return state.resultBlob ? Array.from(new Uint8Array(await state.resultBlob.arrayBuffer())) : null; },
    get region() { return state.region ? { ...state.region } : null; },
    ids() { return Array.from(state.ids); },
    async resultBase64() {
      if (!state.resultBlob) return null;
      const bytes = new Uint8Array(await state.resultBlob.arrayBuffer());
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(text);
    },
    classCounts() {
      const counts = {};
      for (const id of state.ids) counts[id] = (counts[id] || 0) + 1;
      return counts;
    },
  };

  start().catch((err) => status(`Studio failed to start: ${err.message}`, "error"));
})();
