// spadekit studio, boxes mode (models that synthesize from object boxes, e.g. BachGAN): draw, move
// and resize labelled boxes; the server makes the photo from them and from layouts it retrieves
// from the model's memory bank. The "Retrieved layouts" panel shows the layouts behind the photo and
// the best-ranked candidates; the user can put a candidate in place of one of them.
//
// Boxes live in model pixels, columns [x0, x1) and rows [y0, y1), and are drawn in order (later on
// top), exactly as POST /api/boxes reads them. As when painting, at most one request is in flight
// and the latest boxes are sent when it returns.
"use strict";

(() => {
  const page = window.spadekitStudioPage;
  const modes = window.spadekitModes;
  const $ = (id) => document.getElementById(id);
  const GRAB_PX = 8;      // CSS pixels around an edge or a corner that grab it
  const LIVE_MS = 120;    // while a box is dragged and the pointer rests
  const UNDO_LIMIT = 60;
  // Where the first boxes go (fractions of the canvas), one per box class, so the mode opens on a scene.
  const START = [[0.04, 0.16, 0.44, 0.66], [0.6, 0.22, 0.86, 0.72], [0.12, 0.66, 0.5, 0.86], [0.7, 0.6, 0.78, 0.9]];
  const CURSORS = { move: "move", n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize",
                    nw: "nwse-resize", se: "nwse-resize", ne: "nesw-resize", sw: "nesw-resize" };

  const canvas = $("boxes");
  const ctx = canvas.getContext("2d");
  const st = {
    W: 0, H: 0, allowed: [], names: [], k: 3, candidatesWanted: 8,
    boxes: [], selected: -1, drag: null, undo: [], redo: [],
    version: 0, shownVersion: -1, inFlight: false, timer: 0,
    requests: 0, results: 0, errors: 0,
    used: [], candidates: [], chosen: null, slot: null,
    background: null, started: false, active: false,
  };

  // ------------------------------------------------------------------ geometry

  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const copyBoxes = (boxes) => boxes.map((b) => ({ ...b }));
  const sameBoxes = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  function toModel(event) {
    const r = canvas.getBoundingClientRect();
    return [((event.clientX - r.left) / r.width) * st.W, ((event.clientY - r.top) / r.height) * st.H];
  }

  // The part of box b at model point (x, y): "move", an edge or corner ("n", "se", ...), or null.
  function partAt(b, x, y) {
    const g = GRAB_PX * st.W / canvas.getBoundingClientRect().width;
    // Inside a small box the grab bands shrink, so its middle still moves it.
    const gx = Math.min(g, (b.x1 - b.x0) / 3), gy = Math.min(g, (b.y1 - b.y0) / 3);
    if (x < b.x0 - g || x > b.x1 + g || y < b.y0 - g || y > b.y1 + g) return null;
    const w = x <= b.x0 + gx, e = x >= b.x1 - gx, n = y <= b.y0 + gy, s = y >= b.y1 - gy;
    const part = (n ? "n" : s ? "s" : "") + (w ? "w" : e ? "e" : "");
    return part || "move";
  }

  function hit(x, y) {
    const order = st.boxes.map((_, i) => i).reverse();
    if (st.selected >= 0) order.unshift(st.selected);
    for (const i of order) {
      const part = partAt(st.boxes[i], x, y);
      if (part) return { i, part };
    }
    return null;
  }

  // ------------------------------------------------------------------ drawing

  function fit() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  }

  function draw() {
    if (!st.active || !st.W) return;
    fit();
    const dpr = window.devicePixelRatio || 1;
    const sx = canvas.width / st.W, sy = canvas.height / st.H;
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#eef0f4";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    // The first retrieved layout, faint: the background the photo is built on.
    if (st.background && st.background.complete && st.background.naturalWidth) {
      ctx.globalAlpha = 0.35;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(st.background, 0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = 1;
    }
    ctx.font = `${Math.round(12 * dpr)}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    st.boxes.forEach((b) => {
      const c = page.state.palette[b.cls] || [0, 0, 0];
      const x = b.x0 * sx, y = b.y0 * sy, w = (b.x1 - b.x0) * sx, h = (b.y1 - b.y0) * sy;
      ctx.fillStyle = `rgba(${c[0]},${c[1]},${c[2]},0.6)`;
      ctx.fillRect(x, y, w, h);
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
      ctx.strokeRect(x + dpr, y + dpr, Math.max(0, w - 2 * dpr), Math.max(0, h - 2 * dpr));
      const text = st.names[b.cls] || String(b.cls);
      const tw = ctx.measureText(text).width + 8 * dpr;
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fillRect(x, y, tw, 16 * dpr);
      ctx.fillStyle = "#1d2433";
      ctx.fillText(text, x + 4 * dpr, y + 2 * dpr);
    });
    const b = st.boxes[st.selected];
    if (b) {
      const x = b.x0 * sx, y = b.y0 * sy, w = (b.x1 - b.x0) * sx, h = (b.y1 - b.y0) * sy;
      ctx.lineWidth = 1.5 * dpr;
      ctx.setLineDash([5 * dpr, 4 * dpr]);
      ctx.strokeStyle = "#1d2433";
      ctx.strokeRect(x, y, w, h);
      ctx.setLineDash([]);
      const r = 4 * dpr;
      for (const [hx, hy] of [[x, y], [x + w / 2, y], [x + w, y], [x + w, y + h / 2], [x + w, y + h], [x + w / 2, y + h], [x, y + h], [x, y + h / 2]]) {
        ctx.fillStyle = "#fff";
        ctx.fillRect(hx - r, hy - r, 2 * r, 2 * r);
        ctx.strokeRect(hx - r, hy - r, 2 * r, 2 * r);
      }
    }
  }

  // ------------------------------------------------------------------ editing

  function commit(before) {
    if (sameBoxes(before, st.boxes)) return false;
    st.undo.push(before);
    if (st.undo.length > UNDO_LIMIT) st.undo.shift();
    st.redo.length = 0;
    updateButtons();
    return true;
  }

  function edit(change) {
    const before = copyBoxes(st.boxes);
    change();
    if (commit(before)) changed(0);
    draw();
  }

  function undo() {
    if (!st.undo.length) return;
    st.redo.push(copyBoxes(st.boxes));
    st.boxes = st.undo.pop();
    st.selected = -1;
    updateButtons(); draw(); changed(0);
  }

  function redo() {
    if (!st.redo.length) return;
    st.undo.push(copyBoxes(st.boxes));
    st.boxes = st.redo.pop();
    st.selected = -1;
    updateButtons(); draw(); changed(0);
  }

  function updateButtons() {
    $("box-undo").disabled = st.undo.length === 0;
    $("box-redo").disabled = st.redo.length === 0;
    $("box-delete").disabled = st.selected < 0;
    $("box-clear").disabled = st.boxes.length === 0;
  }

  function select(i) {
    st.selected = i;
    const b = st.boxes[i];
    if (b && page.state.current !== b.cls) page.selectClass(b.cls); // the class list follows the selection
    updateButtons();
  }

  function deleteSelected() {
    if (st.selected < 0) return;
    edit(() => { st.boxes.splice(st.selected, 1); st.selected = -1; });
    updateButtons();
  }

  function onDown(event) {
    if (!st.active || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.focus({ preventScroll: true });
    const [x, y] = toModel(event);
    const found = hit(x, y);
    const before = copyBoxes(st.boxes);
    if (found) {
      select(found.i);
      st.drag = { id: event.pointerId, part: found.part, x, y, start: { ...st.boxes[found.i] }, before };
    } else {
      const cls = page.state.current;
      if (!st.allowed.includes(cls)) {
        page.status(`Boxes can be ${st.allowed.map((c) => st.names[c]).join(", ")}: pick one of them`, "warn");
        return;
      }
      select(-1);
      st.drag = { id: event.pointerId, part: "new", cls, ax: clamp(Math.round(x), 0, st.W), ay: clamp(Math.round(y), 0, st.H), before };
    }
    canvas.setPointerCapture(event.pointerId);
    draw();
  }

  function dragTo(x, y) {
    const d = st.drag;
    if (d.part === "new") {
      const px = clamp(Math.round(x), 0, st.W), py = clamp(Math.round(y), 0, st.H);
      const box = { cls: d.cls, x0: Math.min(d.ax, px), y0: Math.min(d.ay, py), x1: Math.max(d.ax, px), y1: Math.max(d.ay, py) };
      if (box.x1 === box.x0 || box.y1 === box.y0) return; // not a box yet
      if (d.index === undefined) { st.boxes.push(box); d.index = st.boxes.length - 1; select(d.index); }
      else st.boxes[d.index] = box;
      return;
    }
    const s = d.start, b = st.boxes[st.selected];
    const dx = Math.round(x - d.x), dy = Math.round(y - d.y);
    if (d.part === "move") {
      const w = s.x1 - s.x0, h = s.y1 - s.y0;
      b.x0 = clamp(s.x0 + dx, 0, st.W - w); b.x1 = b.x0 + w;
      b.y0 = clamp(s.y0 + dy, 0, st.H - h); b.y1 = b.y0 + h;
      return;
    }
    if (d.part.includes("w")) b.x0 = clamp(s.x0 + dx, 0, s.x1 - 1);
    if (d.part.includes("e")) b.x1 = clamp(s.x1 + dx, s.x0 + 1, st.W);
    if (d.part.includes("n")) b.y0 = clamp(s.y0 + dy, 0, s.y1 - 1);
    if (d.part.includes("s")) b.y1 = clamp(s.y1 + dy, s.y0 + 1, st.H);
  }

  function onMove(event) {
    if (!st.active) return;
    const [x, y] = toModel(event);
    if (!st.drag || event.pointerId !== st.drag.id) {
      const found = hit(x, y);
      canvas.style.cursor = found ? CURSORS[found.part] : "crosshair";
      return;
    }
    const before = JSON.stringify(st.boxes);
    dragTo(x, y);
    if (JSON.stringify(st.boxes) !== before) { draw(); changed(LIVE_MS); }
  }

  function onUp(event) {
    if (!st.drag || event.pointerId !== st.drag.id) return;
    const d = st.drag;
    st.drag = null;
    if (commit(d.before)) changed(0);
    draw();
  }

  function startBoxes() {
    return st.allowed.slice(0, START.length).map((cls, i) => {
      const [fx0, fy0, fx1, fy1] = START[i];
      const x0 = Math.round(fx0 * st.W), y0 = Math.round(fy0 * st.H);
      return { cls, x0, y0, x1: Math.max(x0 + 1, Math.round(fx1 * st.W)), y1: Math.max(y0 + 1, Math.round(fy1 * st.H)) };
    });
  }

  // ------------------------------------------------------------------ synthesis (latest wins)

  function changed(delay = 0) {
    st.version++;
    clearTimeout(st.timer);
    st.timer = setTimeout(send, delay);
  }

  function requestBody() {
    const body = {
      boxes: st.boxes.map((b) => ({ class: b.cls, box: [b.x0, b.y0, b.x1, b.y1] })),
      candidates: st.candidatesWanted,
    };
    if (page.state.model.capabilities.seed) body.seed = page.state.seed;
    if (st.chosen) body.choose = st.chosen;
    return body;
  }

  async function send() {
    if (!st.active || st.inFlight) return; // the running request re-sends when it ends
    const version = st.version;
    st.inFlight = true;
    $("busy").hidden = false;
    st.requests++;
    try {
      const started = performance.now();
      const response = await fetch("/api/boxes", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(requestBody()),
      });
      if (!response.ok) {
        st.errors++;
        page.status(await page.errorText(response), "error");
      } else {
        const data = await response.json();
        if (!st.active) return;
        const ms = Math.round(performance.now() - started);
        await page.showImage(modes.dataUrlBlob(data.image), String(data.seed), `${ms} ms (model ${Math.round(data.synthesis_ms)} ms)`);
        st.resultPng = data.image;
        st.used = data.used;
        st.candidates = data.candidates;
        st.shownVersion = version;
        st.results++;
        setBackground(data.used[0]);
        renderRetrieved();
      }
    } catch (err) {
      st.errors++;
      page.status(`Could not reach the server: ${err.message}`, "error");
    } finally {
      st.inFlight = false;
      $("busy").hidden = true;
      if (st.active && st.version !== version && st.version !== st.shownVersion) {
        clearTimeout(st.timer);
        st.timer = setTimeout(send, st.drag ? LIVE_MS : 0);
      }
    }
  }

  function setBackground(entry) {
    if (!entry) { st.background = null; draw(); return; }
    if (st.background && st.background.dataset.url === entry.url) return;
    const img = new Image();
    img.dataset.url = entry.url;
    img.onload = draw;
    img.src = entry.url;
    st.background = img;
  }

  // ------------------------------------------------------------------ retrieved layouts

  function thumb(entry, caption, classes, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = ["thumb", ...classes].join(" ");
    b.dataset.index = String(entry.index);
    b.title = `${entry.name} · match ${entry.score.toFixed(3)}`;
    const img = document.createElement("img");
    img.src = entry.url;
    img.alt = `bank layout ${entry.index}`;
    const cap = document.createElement("span");
    cap.textContent = caption;
    b.append(img, cap);
    b.addEventListener("click", onClick);
    return b;
  }

  function renderRetrieved() {
    const used = $("used-layouts");
    used.textContent = "";
    st.used.forEach((entry, j) => {
      used.appendChild(thumb(entry, `${j + 1} · ${entry.score.toFixed(2)}`, st.slot === j ? ["slot"] : [], () => {
        st.slot = st.slot === j ? null : j;
        renderRetrieved();
      }));
    });
    const inUse = st.used.map((m) => m.index);
    const list = $("candidate-layouts");
    list.textContent = "";
    st.candidates.forEach((entry, rank) => {
      const on = inUse.includes(entry.index);
      const item = thumb(entry, entry.score.toFixed(2), on ? ["in-use"] : [], () => pick(entry.index));
      item.title = `#${rank + 1}: ${item.title}${on ? " (used)" : ""}`;
      list.appendChild(item);
    });
    $("best-layouts").disabled = !st.chosen;
    $("chosen-note").textContent = st.chosen ? "· your choice" : "· best matches";
  }

  // Put bank entry `index` in the selected slot (default: the last), or swap it there if already used.
  function pick(index) {
    const now = st.used.map((m) => m.index);
    const slot = st.slot ?? now.length - 1;
    const at = now.indexOf(index);
    if (at === slot) return;
    if (at >= 0) [now[at], now[slot]] = [now[slot], now[at]];
    else now[slot] = index;
    st.chosen = now;
    st.slot = null;
    renderRetrieved();
    changed(0);
  }

  // ------------------------------------------------------------------ mode

  function markClasses(on) {
    for (const li of $("classes").children) li.classList.toggle("mode-off", on && !st.allowed.includes(Number(li.dataset.id)));
  }

  function enter() {
    const model = page.state.model;
    const info = model.mode_info.boxes;
    page.pause();
    st.active = true;
    if (!st.started) {
      st.started = true;
      [st.W, st.H] = model.size;
      st.allowed = info.classes.map((c) => c.id);
      st.names = model.classes.slice();
      for (const c of info.classes) st.names[c.id] = c.name;
      st.k = info.num_retrieved;
      st.candidatesWanted = info.candidates;
      st.boxes = startBoxes();
    }
    markClasses(true);
    if (!st.allowed.includes(page.state.current) && st.allowed.length) page.selectClass(st.allowed[0]);
    updateButtons();
    draw();
    changed(0);
  }

  function leave() {
    st.active = false;
    clearTimeout(st.timer);
    st.drag = null;
    markClasses(false);
  }

  function bind() {
    canvas.addEventListener("pointerdown", onDown);
    canvas.addEventListener("pointermove", onMove);
    canvas.addEventListener("pointerup", onUp);
    canvas.addEventListener("pointercancel", onUp);
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(draw).observe(canvas);

    // Clicking a class changes the selected box's class (studio.js has already selected the class).
    const retype = (event) => {
      if (!st.active || st.selected < 0 || !event.target.closest("li")) return;
      const cls = Number(event.target.closest("li").dataset.id);
      if (st.allowed.includes(cls) && st.boxes[st.selected].cls !== cls) edit(() => { st.boxes[st.selected].cls = cls; });
    };
    $("classes").addEventListener("click", retype);
    $("classes").addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") retype(e); });

    $("box-undo").addEventListener("click", undo);
    $("box-redo").addEventListener("click", redo);
    $("box-delete").addEventListener("click", deleteSelected);
    $("box-clear").addEventListener("click", () => edit(() => { st.boxes = []; st.selected = -1; }));
    $("best-layouts").addEventListener("click", () => { st.chosen = null; st.slot = null; renderRetrieved(); changed(0); });
    $("box-download").addEventListener("click", () => {
      const doc = { width: st.W, height: st.H, boxes: st.boxes.map((b) => ({ class: st.names[b.cls], box: [b.x0, b.y0, b.x1, b.y1] })) };
      page.download(new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" }), "boxes.json");
    });
    // The seed is the Style card's (studio.js has already read it).
    $("seed").addEventListener("change", () => { if (st.active) changed(0); });
    $("variation").addEventListener("click", () => { if (st.active) changed(0); });

    // Keys, before the painting's: undo/redo boxes, Delete, Escape, arrows nudge the selected box.
    document.addEventListener("keydown", (e) => {
      if (!st.active) return;
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      const arrows = { arrowleft: [-1, 0], arrowright: [1, 0], arrowup: [0, -1], arrowdown: [0, 1] };
      if (mod && key === "z") e.shiftKey ? redo() : undo();
      else if (mod && key === "y") redo();
      else if (typing || mod || e.altKey) return;
      else if (key === "delete" || key === "backspace") deleteSelected();
      else if (key === "escape") { select(-1); draw(); }
      else if (arrows[key] && st.selected >= 0) {
        const [dx, dy] = arrows[key].map((v) => v * (e.shiftKey ? 4 : 1));
        edit(() => {
          const b = st.boxes[st.selected], w = b.x1 - b.x0, h = b.y1 - b.y0;
          b.x0 = clamp(b.x0 + dx, 0, st.W - w); b.x1 = b.x0 + w;
          b.y0 = clamp(b.y0 + dy, 0, st.H - h); b.y1 = b.y0 + h;
        });
      } else if (!["b", "f", "e", "[", "]"].includes(key)) return; // painting's tool keys do nothing here
      e.preventDefault();
      e.stopPropagation();
    }, true);
  }

  bind();
  modes.register("boxes", { enter, leave });

  // Read-only view for tests and the console.
  window.spadekitBoxes = {
    get results() { return st.results; },
    get requests() { return st.requests; },
    get errors() { return st.errors; },
    get upToDate() { return !st.inFlight && st.shownVersion === st.version; },
    get selected() { return st.selected; },
    get chosen() { return st.chosen ? st.chosen.slice() : null; },
    boxes() { return st.boxes.map((b) => [b.cls, b.x0, b.y0, b.x1, b.y1]); },
    used() { return st.used.map((m) => m.index); },
    candidates() { return st.candidates.map((m) => m.index); },
    resultPng() { return st.resultPng ? Array.from(new Uint8Array(atob(st.resultPng.split(",")[1]).split("").map((c) => c.charCodeAt(0)))) : null; },
  };
})();
