// The DCGAN explorer page: plain JavaScript, no build step, no dependencies.
//
// Talks to the model only through TF Serving's REST API on the page's own origin (dcgan serve,
// or dcgan explore forwarding to a real tensorflow_model_server):
//   GET  /v1/models/<name>/metadata            z size and image size (signature_def)
//   POST /v1/models/<name>:predict from_seeds  a page of 64 samples in one request (and their z)
//   POST ... interpolate                       linear walks (the formula of dcgan interpolate)
//   POST ... serving_default                   spherical walks and arithmetic (z computed here)
// Spherical interpolation and the arithmetic's means are computed in float64 exactly as
// keras_dcgan.analysis.latent_walks.slerp and arithmetic.concept_vector do (NumPy's pairwise
// summation included), then rounded to float32 as they are.
// Boxes drawn on a sample (mouse drags on a canvas) become the box file of dcgan ablate
// --boxes (keras_dcgan.analysis.ablation), made in the page: no request but the sample's.
"use strict";

(() => {
  const PAGE = 64; // samples per page: one from_seeds request
  const MAX_IMAGES = 256; // images in one walk
  const MAX_STEPS = 128;
  const MAX_GROUP = 16; // seeds per arithmetic group
  const SLERP_EPS = 1e-6; // latent_walks._SLERP_EPS
  const NOISE_SCALE = 0.25; // the paper's (dcgan arithmetic --noise_scale)
  const NEIGHBOURS = 8;
  const MAX_SEED = Number.MAX_SAFE_INTEGER;

  class PageError extends Error {}

  const $ = (id) => document.getElementById(id);
  const state = {
    model: null, version: null, zDim: null, shape: null,
    start: 0, selection: [], latents: new Map(), busy: 0,
  };

  // ------------------------------------------------------------------------ messages, busy
  function showError(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = false;
  }

  function clearError() {
    $("message").textContent = "";
    $("message").hidden = true;
  }

  // Runs an action of a section: its data-state is "loading", then "ready" or "error"; any
  // failure is shown in the page (a PageError's message as is).
  async function run(section, action) {
    clearError();
    state.busy += 1;
    $("busy").hidden = false;
    section.dataset.state = "loading";
    try {
      await action();
      section.dataset.state = "ready";
    } catch (e) {
      section.dataset.state = "error";
      showError(e instanceof PageError ? e.message : `Unexpected error: ${e && e.message}`);
    } finally {
      state.busy -= 1;
      $("busy").hidden = state.busy === 0;
    }
  }

  // ---------------------------------------------------------------------------- input checks
  function parseSeed(text, what) {
    const s = String(text).trim();
    if (!/^[+-]?\d+$/.test(s)) {
      throw new PageError(`${what}: ${JSON.stringify(s)} is not an integer seed.`);
    }
    const n = Number(s);
    if (!Number.isSafeInteger(n)) {
      throw new PageError(`${what}: ${s} is too large for this page (seeds from -${MAX_SEED} ` +
        `to ${MAX_SEED}; the CLI takes any int64).`);
    }
    return n === 0 ? 0 : n; // no -0
  }

  function parseSeeds(text, what) {
    const parts = String(text).split(/[\s,]+/).filter((p) => p !== "");
    if (parts.length === 0) {
      throw new PageError(`${what} is empty: click samples to select them, or type seeds such ` +
        "as 3,17,42.");
    }
    return parts.map((p) => parseSeed(p, what));
  }

  function parseInteger(text, what, min, max) {
    const s = String(text).trim();
    if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
      throw new PageError(`${what} must be an integer from ${min} to ${max}; got ` +
        `${JSON.stringify(s)}.`);
    }
    return Number(s);
  }

  // --------------------------------------------------------------------------- the REST API
  async function api(path, body) {
    const url = `/v1/models/${encodeURIComponent(state.model)}${path}`;
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      throw new PageError(`Cannot reach the server (${e.message}).`);
    }
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const detail = json && typeof json.error === "string" ? json.error : text.slice(0, 300);
      throw new PageError(`The server answered ${response.status} ` +
        `${response.statusText || ""}: ${detail}`.replace("  ", " "));
    }
    if (json === null) throw new PageError(`The server's answer to ${url} is not JSON.`);
    return json;
  }

  async function predict(signature, inputs) {
    const json = await api(":predict", { signature_name: signature, inputs });
    if (!json.outputs || !json.outputs.png_bytes) {
      throw new PageError(`The server's answer to ${signature} has no outputs.png_bytes.`);
    }
    return json.outputs;
  }

  async function loadMetadata() {
    const json = await api("/metadata");
    const defs = ((json.metadata || {}).signature_def || {}).signature_def || {};
    for (const name of ["from_seeds", "interpolate", "serving_default"]) {
      if (!defs[name]) {
        throw new PageError(`Model ${state.model} has no ${name} signature: export it with ` +
          "dcgan export (signatures serving_default, from_seeds, interpolate).");
      }
    }
    // TF Serving writes proto field names (tensor_shape), protobuf's JSON camelCase.
    const dims = (info) => ((info && (info.tensor_shape || info.tensorShape)) || {}).dim || [];
    const z = dims((defs.serving_default.inputs || {}).z).map((d) => Number(d.size));
    const images = dims((defs.serving_default.outputs || {}).images).map((d) => Number(d.size));
    if (z.length !== 2 || !(z[1] > 0) || images.length !== 4) {
      throw new PageError("The model's serving_default signature does not take z [N, z_dim] " +
        "and return images [N, H, W, C].");
    }
    state.zDim = z[1];
    state.shape = images.slice(1);
    state.version = (json.model_spec || {}).version;
    $("model-info").textContent = `Model ${state.model}, version ${state.version}: ` +
      `z_dim ${state.zDim}, images ${state.shape[0]}x${state.shape[1]}x${state.shape[2]}.`;
  }

  // The latents of `seeds` (float32 values as numbers): from the pages already shown, else one
  // from_seeds request.
  async function latentsOf(seeds) {
    const missing = [...new Set(seeds.filter((s) => !state.latents.has(s)))];
    if (missing.length) {
      const out = await predict("from_seeds", { seeds: missing });
      missing.forEach((s, i) => state.latents.set(s, out.z[i]));
    }
    return seeds.map((s) => state.latents.get(s));
  }

  // ------------------------------------------------------------------------------- figures
  function figure(png, label, filename, role) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = `data:image/png;base64,${png.b64}`;
    img.alt = label;
    img.title = label;
    img.dataset.role = role;
    const caption = document.createElement("figcaption");
    const text = document.createElement("span");
    text.textContent = label;
    const link = document.createElement("a");
    link.href = img.src;
    link.download = filename;
    link.textContent = "PNG";
    link.title = `Download ${filename}`;
    caption.append(text, link);
    fig.append(img, caption);
    return fig;
  }

  function setCopy(id, text) {
    $(id).value = text;
  }

  // ---------------------------------------------------------------------------------- grid
  async function showGrid(start) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(start + PAGE - 1)) {
      throw new PageError(`The first seed must be from -${MAX_SEED} to ${MAX_SEED - PAGE + 1}.`);
    }
    const seeds = Array.from({ length: PAGE }, (_, i) => start + i);
    const out = await predict("from_seeds", { seeds });
    seeds.forEach((s, i) => state.latents.set(s, out.z[i]));
    const grid = $("grid");
    grid.replaceChildren(...seeds.map((s, i) => {
      const fig = figure(out.png_bytes[i], `${s}`, `seed-${s}.png`, "sample");
      fig.dataset.seed = String(s);
      fig.querySelector("img").addEventListener("click", () => {
        if ($("box-pick").checked) run($("boxes"), () => annotate(s));
        else toggle(s);
      });
      return fig;
    }));
    state.start = start;
    $("seed-start").value = String(start);
    setCopy("grid-cli", `dcgan sample --model_dir=RUN --seeds=${seeds.join(",")} ` +
      "--output=grid.png");
    markSelection();
  }

  // ----------------------------------------------------------------------------- selection
  function toggle(seed) {
    const at = state.selection.indexOf(seed);
    if (at >= 0) state.selection.splice(at, 1);
    else state.selection.push(seed);
    $("selection").value = state.selection.join(",");
    clearError();
    markSelection();
  }

  function markSelection() {
    for (const fig of $("grid").querySelectorAll("figure")) {
      const at = state.selection.indexOf(Number(fig.dataset.seed));
      fig.classList.toggle("selected", at >= 0);
      let badge = fig.querySelector(".order");
      if (at >= 0 && !badge) {
        badge = document.createElement("span");
        badge.className = "order";
        fig.append(badge);
      }
      if (badge) {
        if (at >= 0) badge.textContent = String(at + 1);
        else badge.remove();
      }
    }
    const seeds = state.selection.join(",");
    setCopy("selection-cli", seeds ? `dcgan sample --model_dir=RUN --seeds=${seeds} ` +
      "--output=selection.png" : "");
  }

  function readSelection() {
    const text = $("selection").value;
    if (text.trim() === "") {
      state.selection = [];
    } else {
      state.selection = parseSeeds(text, "The selection");
    }
    markSelection();
  }

  // ----------------------------------------------------------- interpolation, as in NumPy
  const f32 = Math.fround;

  // numpy.add.reduce over a contiguous float64 axis: pairwise summation (8 accumulators in
  // blocks of at most 128 values), which np.linalg.norm and np.sum(axis=-1) use.
  function pairwiseSum(v, lo, n) {
    if (n < 8) {
      let r = 0;
      for (let i = 0; i < n; i++) r += v[lo + i];
      return r;
    }
    if (n <= 128) {
      const r = v.slice(lo, lo + 8);
      let i = 8;
      for (; i < n - (n % 8); i += 8) {
        for (let j = 0; j < 8; j++) r[j] += v[lo + i + j];
      }
      let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; i++) res += v[lo + i];
      return res;
    }
    let n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return pairwiseSum(v, lo, n2) + pairwiseSum(v, lo + n2, n - n2);
  }

  const sum = (v) => 0 + pairwiseSum(v, 0, v.length);

  // latent_walks.lerp in float32: z0 + t (z1 - z0), z1 exactly at t == 1.
  function lerp(a, b, t) {
    if (t === 1) return b.slice();
    return a.map((x, i) => f32(x + f32(t * f32(b[i] - x))));
  }

  // latent_walks.slerp (float64, lerp for degenerate pairs, exact ends), rounded to float32.
  function slerp(a, b, t) {
    const n0 = Math.sqrt(sum(a.map((x) => x * x)));
    const n1 = Math.sqrt(sum(b.map((x) => x * x)));
    let degenerate = n0 < SLERP_EPS || n1 < SLERP_EPS;
    const safe = degenerate ? 1 : n0 * n1;
    const cos = Math.min(Math.max(sum(a.map((x, i) => x * b[i])) / safe, -1), 1);
    const omega = Math.acos(cos);
    const sin = Math.sin(omega);
    degenerate = degenerate || sin < SLERP_EPS;
    if (degenerate) return lerp(a, b, t);
    if (t === 0) return a.slice();
    if (t === 1) return b.slice();
    const w0 = Math.sin((1 - t) * omega) / sin;
    const w1 = Math.sin(t * omega) / sin;
    return a.map((x, i) => f32(w0 * x + w1 * b[i]));
  }

  // np.linspace(0, 1, steps, dtype=float32): i * (1 / (steps - 1)) in float64, the last 1.
  function linspace(steps) {
    return Array.from({ length: steps }, (_, i) => (i === steps - 1 ? 1 : f32(i * (1 / (steps - 1)))));
  }

  // ---------------------------------------------------------------------------------- walk
  function walkRequest(points, steps, method) {
    const t = linspace(steps);
    if (method === "spherical") {
      const z = [points[0]];
      for (let k = 0; k + 1 < points.length; k++) {
        for (let j = 1; j < steps; j++) z.push(slerp(points[k], points[k + 1], t[j]));
      }
      return ["serving_default", { z }];
    }
    // interpolate: z_start + t (z_end - z_start), row by row. The points themselves are sent
    // as (p, p, 0), which gives p exactly, as latent_walks.walk has them.
    const rows = { z_start: [points[0]], z_end: [points[0]], t: [0] };
    for (let k = 0; k + 1 < points.length; k++) {
      for (let j = 1; j < steps; j++) {
        const end = j === steps - 1;
        rows.z_start.push(end ? points[k + 1] : points[k]);
        rows.z_end.push(points[k + 1]);
        rows.t.push(end ? 0 : t[j]);
      }
    }
    return ["interpolate", rows];
  }

  async function runWalk() {
    const seeds = parseSeeds($("selection").value, "The selection");
    if (seeds.length < 2) {
      throw new PageError("A walk needs at least 2 selected seeds: click two samples or more.");
    }
    const steps = parseInteger($("walk-steps").value, "Steps per segment", 2, MAX_STEPS);
    const total = (seeds.length - 1) * (steps - 1) + 1;
    if (total > MAX_IMAGES) {
      throw new PageError(`That walk has ${total} images, more than ${MAX_IMAGES}: use fewer ` +
        "steps or seeds.");
    }
    const method = $("walk-method").value;
    const points = await latentsOf(seeds);
    const [signature, inputs] = walkRequest(points, steps, method);
    const out = await predict(signature, inputs);
    const z = out.z || inputs.z;
    const name = `walk-${method}-${seeds.join("_")}`;
    const strip = $("walk-strip");
    strip.replaceChildren(...out.png_bytes.map((png, i) => {
      const fig = figure(png, `${i}`, `${name}-${i}.png`, "walk");
      fig.dataset.index = String(i);
      fig.querySelector("img").addEventListener("click", () => showStep(i));
      return fig;
    }));
    state.walk = { pngs: out.png_bytes, name };
    $("walk-slider").max = String(total - 1);
    $("walk-view").hidden = false;
    showStep(0);
    setCopy("walk-cli", `dcgan interpolate --model_dir=RUN --seeds=${seeds.join(",")} ` +
      `--steps=${steps} --method=${method} --output=walk.png --save_latents=walk.npy`);
    setCopy("walk-json", JSON.stringify({ seeds, steps, method, z }));
  }

  function showStep(i) {
    const { pngs, name } = state.walk;
    $("walk-slider").value = String(i);
    const fig = figure(pngs[i], `step ${i} of ${pngs.length - 1}`, `${name}-${i}.png`, "walk-current");
    $("walk-current").replaceChildren(...fig.childNodes);
    for (const f of $("walk-strip").children) f.classList.toggle("current", f.dataset.index === String(i));
  }

  // ---------------------------------------------------------------------------- arithmetic
  // arithmetic.concept_vector: the float64 mean of the rows (summed in order), as float32.
  function mean(rows) {
    const total = rows[0].map(() => 0);
    for (const row of rows) row.forEach((x, i) => { total[i] += x; });
    return total.map((x) => f32(x / rows.length));
  }

  // A small seeded PRNG (mulberry32): the page's neighbours can be drawn again from the seed.
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function readGroups() {
    return ["a", "b", "c"].map((g) => {
      const what = `Group ${g.toUpperCase()}`;
      const seeds = parseSeeds($(`arith-${g}`).value, what);
      if (seeds.length > MAX_GROUP) {
        throw new PageError(`${what} has ${seeds.length} seeds, more than ${MAX_GROUP}.`);
      }
      return seeds;
    });
  }

  async function runArithmetic() {
    const groups = readGroups();
    const noiseSeed = parseInteger($("arith-noise-seed").value, "The noise seed", 0, 2 ** 32 - 1);
    const exemplars = await predict("from_seeds", { seeds: groups.flat() });
    let at = 0;
    const parts = groups.map((seeds) => {
      const slice = [at, at + seeds.length];
      at += seeds.length;
      return slice;
    });
    parts.forEach(([lo, hi], g) => groups[g].forEach((s, i) => state.latents.set(s, exemplars.z[lo + i])));
    const means = parts.map(([lo, hi]) => mean(exemplars.z.slice(lo, hi)));
    const result = means[0].map((x, i) => f32(f32(x - means[1][i]) + means[2][i]));
    const random = mulberry32(noiseSeed);
    const neighbours = Array.from({ length: NEIGHBOURS }, () =>
      result.map((x) => f32(x + NOISE_SCALE * (2 * random() - 1))));
    const out = await predict("serving_default", { z: [...means, result, ...neighbours] });
    showArithmetic(groups, parts, exemplars, out);
    setCopy("arith-cli", `dcgan arithmetic --model_dir=RUN --a=${groups[0].join(",")} ` +
      `--b=${groups[1].join(",")} --c=${groups[2].join(",")} --num_neighbours=${NEIGHBOURS} ` +
      `--noise_scale=${NOISE_SCALE} --output=arithmetic.png`);
    setCopy("arith-json", JSON.stringify({
      a: groups[0], b: groups[1], c: groups[2], means, result, neighbours,
      noise: `uniform in [-${NOISE_SCALE}, ${NOISE_SCALE}] drawn in the page (mulberry32, seed ` +
        `${noiseSeed}), not the CLI's NumPy draw`,
    }));
  }

  function showArithmetic(groups, parts, exemplars, out) {
    const rows = groups.map((seeds, g) => {
      const name = "abc"[g];
      const row = document.createElement("div");
      row.className = "arith-row";
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = name.toUpperCase();
      row.append(label);
      seeds.forEach((s, i) => {
        row.append(figure(exemplars.png_bytes[parts[g][0] + i], `${s}`, `seed-${s}.png`,
          `exemplar-${name}`));
      });
      const meanFig = figure(out.png_bytes[g], "mean", `arithmetic-mean-${name}.png`, `mean-${name}`);
      meanFig.classList.add("mean");
      row.append(meanFig);
      return row;
    });
    $("arith-rows").replaceChildren(...rows);
    const cells = out.png_bytes.slice(4).map((png, i) =>
      figure(png, `+n${i + 1}`, `arithmetic-neighbour-${i + 1}.png`, "neighbour"));
    const result = figure(out.png_bytes[3], "result", "arithmetic-result.png", "result");
    result.classList.add("result");
    cells.splice(cells.length / 2, 0, result);
    $("arith-result").replaceChildren(...cells);
    $("arith-view").hidden = false;
  }

  // ------------------------------------------------------------------ boxes for dcgan ablate
  // The box file of keras_dcgan.analysis.ablation (dcgan ablate --boxes): {"image_size": N,
  // "model": "...", "samples": [{"seed": S, "boxes": [[x0, y0, x1, y1], ...]}, ...]}.
  // A drag on the canvas (CANVAS css px square, over the sample) maps each of its two corners to
  // image pixel coordinates with x = round(cssX * N / width) (the nearest pixel *edge*, clamped
  // to 0..N), then x0 = min, x1 = max (x1 excluded, as in the file); same for y. A box with
  // x0 == x1 or y0 == y1 (a click, or a drag under half a pixel) is refused.
  const boxes = { seed: null, samples: new Map(), drag: null, pngs: new Map() };

  function imageSize() {
    if (!state.shape) throw new PageError("The model's metadata is not loaded yet.");
    return state.shape[0];
  }

  async function annotate(seed) {
    if (!boxes.pngs.has(seed)) {
      const out = await predict("from_seeds", { seeds: [seed] });
      state.latents.set(seed, out.z[0]);
      boxes.pngs.set(seed, out.png_bytes[0]);
    }
    boxes.seed = seed;
    $("box-seed").value = String(seed);
    $("box-image").src = `data:image/png;base64,${boxes.pngs.get(seed).b64}`;
    $("box-image").alt = `seed ${seed}`;
    $("box-view").hidden = false;
    showBoxes();
  }

  function chosenSeed() {
    const text = $("box-seed").value;
    if (text.trim() === "") {
      throw new PageError("No seed chosen: type one, use the selection's last seed, or tick " +
        "\"A click on the grid picks the seed\" and click a sample.");
    }
    return parseSeed(text, "The seed to annotate");
  }

  // The pointer's position on the canvas, in image pixel edges (0..N).
  function toImage(event) {
    const rect = $("box-canvas").getBoundingClientRect();
    const size = imageSize();
    const edge = (client, lo, extent) =>
      Math.min(Math.max(Math.round(((client - lo) * size) / extent), 0), size);
    return [edge(event.clientX, rect.left, rect.width), edge(event.clientY, rect.top, rect.height)];
  }

  function boxOf(a, b) {
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  }

  function drawBoxes() {
    const canvas = $("box-canvas");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (boxes.seed === null || !state.shape) return;
    const k = canvas.width / imageSize();
    const stroke = (box, colour, label) => {
      const [x0, y0, x1, y1] = box.map((v) => v * k);
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#000";
      ctx.strokeRect(x0 + 1, y0 + 1, x1 - x0 - 2, y1 - y0 - 2);
      ctx.lineWidth = 1;
      ctx.strokeStyle = colour;
      ctx.strokeRect(x0 + 1.5, y0 + 1.5, x1 - x0 - 3, y1 - y0 - 3);
      if (label) {
        ctx.font = "11px sans-serif";
        ctx.fillStyle = colour;
        ctx.fillText(label, x0 + 3, y0 + 12);
      }
    };
    (boxes.samples.get(boxes.seed) || []).forEach((box, i) => stroke(box, "#ffeb3b", String(i + 1)));
    if (boxes.drag && boxes.drag.end) stroke(boxOf(boxes.drag.start, boxes.drag.end), "#00e5ff");
  }

  function listItem(text, buttons) {
    const li = document.createElement("li");
    const span = document.createElement("span");
    span.textContent = text;
    li.append(span);
    for (const [label, title, action] of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.title = title;
      button.addEventListener("click", action);
      li.append(button);
    }
    return li;
  }

  function showBoxes() {
    const seed = boxes.seed;
    const own = boxes.samples.get(seed);
    $("box-title").textContent = seed === null ? "" : `Seed ${seed}: ` + (own === undefined
      ? "not annotated yet" : `${own.length} box${own.length === 1 ? "" : "es"}`);
    $("box-list").replaceChildren(...(own || []).map((box, i) =>
      listItem(`[${box.join(", ")}]`, [["Delete", `Delete box ${i + 1}`, () => {
        own.splice(i, 1);
        clearError();
        showBoxes();
      }]])));
    $("box-samples").replaceChildren(...[...boxes.samples].map(([s, list]) => {
      const li = listItem(`seed ${s}: ${list.length} box${list.length === 1 ? "" : "es"}`, [
        ["Show", `Annotate seed ${s}`, () => run($("boxes"), () => annotate(s))],
        ["Remove", `Leave seed ${s} out of the box file`, () => {
          boxes.samples.delete(s);
          clearError();
          showBoxes();
        }],
      ]);
      li.classList.toggle("current", s === seed);
      li.dataset.seed = String(s);
      return li;
    }));
    drawBoxes();
    writeBoxFile();
  }

  function writeBoxFile() {
    const link = $("box-download");
    if (boxes.samples.size === 0 || !state.shape) {
      setCopy("box-json", "");
      setCopy("box-cli", "");
      link.hidden = true;
      link.removeAttribute("href");
      return;
    }
    const file = { image_size: imageSize() };
    const model = $("box-model").value.trim();
    if (model) file.model = model;
    file.samples = [...boxes.samples].map(([seed, list]) => ({ seed, boxes: list.map((b) => b.slice()) }));
    const text = JSON.stringify(file);
    setCopy("box-json", text);
    link.href = `data:application/json;charset=utf-8,${encodeURIComponent(text)}`;
    link.hidden = false;
    setCopy("box-cli", `dcgan ablate --model_dir=RUN --boxes=boxes.json --layer=${paperLayer()} ` +
      `--seeds=${[...boxes.samples.keys()].join(",")}`);
  }

  // The paper's "second highest convolution layer" at this size: G's hidden blocks are project,
  // up1 ... up{n-1} (n = log2(image_size) - 2), and it is the second from the top (up2 at 64 px,
  // up1 at 32 px: block_names[-3] of keras_dcgan.analysis.ablation).
  function paperLayer() {
    const hidden = Math.round(Math.log2(imageSize())) - 2;
    return hidden >= 3 ? `up${hidden - 2}` : "project";
  }

  function startDrag(event) {
    if (event.button !== 0 || boxes.seed === null) return;
    event.preventDefault();
    boxes.drag = { start: toImage(event), end: null };
  }

  function moveDrag(event) {
    if (!boxes.drag) return;
    boxes.drag.end = toImage(event);
    drawBoxes();
  }

  function endDrag(event) {
    if (!boxes.drag) return;
    const box = boxOf(boxes.drag.start, toImage(event));
    boxes.drag = null;
    clearError();
    if (box[2] - box[0] < 1 || box[3] - box[1] < 1) {
      drawBoxes();
      showError(`That box is ${box[2] - box[0]} x ${box[3] - box[1]} image pixels: a box ` +
        "needs at least 1 pixel each way. Drag across the object (a click adds nothing).");
      return;
    }
    if (!boxes.samples.has(boxes.seed)) boxes.samples.set(boxes.seed, []);
    boxes.samples.get(boxes.seed).push(box);
    showBoxes();
  }

  function addWithoutBoxes() {
    if (boxes.seed === null) throw new PageError("No seed chosen: annotate a seed first.");
    const own = boxes.samples.get(boxes.seed);
    if (own && own.length) {
      throw new PageError(`Seed ${boxes.seed} already has ${own.length} box` +
        `${own.length === 1 ? "" : "es"}: delete them to keep it as a sample without boxes.`);
    }
    if (!own) boxes.samples.set(boxes.seed, []);
    showBoxes();
  }

  function wireBoxes() {
    const section = $("boxes");
    $("box-controls").addEventListener("submit", (e) => {
      e.preventDefault();
      run(section, () => annotate(chosenSeed()));
    });
    $("box-from-selection").addEventListener("click", () => run(section, async () => {
      readSelection();
      if (!state.selection.length) {
        throw new PageError("No seed chosen: the selection is empty (click a sample first).");
      }
      await annotate(state.selection[state.selection.length - 1]);
    }));
    $("box-add-empty").addEventListener("click", () => {
      clearError();
      try {
        addWithoutBoxes();
      } catch (e) {
        showError(e.message);
      }
    });
    $("box-model").addEventListener("input", writeBoxFile);
    $("box-canvas").addEventListener("mousedown", startDrag);
    window.addEventListener("mousemove", moveDrag);
    window.addEventListener("mouseup", endDrag);
  }

  // --------------------------------------------------------------------------------- wiring
  function modelName() {
    const asked = new URLSearchParams(window.location.search).get("model");
    if (asked) return asked;
    const meta = document.querySelector('meta[name="dcgan-model"]');
    const injected = meta ? meta.content : "";
    return injected && injected !== "{{MODEL_NAME}}" ? injected : "dcgan";
  }

  function copy(button) {
    const field = $(button.dataset.target);
    field.select();
    const done = () => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, () => document.execCommand("copy"));
    } else {
      document.execCommand("copy");
      done();
    }
  }

  function wire() {
    const samples = $("samples");
    const page = (start) => run(samples, () => showGrid(start));
    $("grid-controls").addEventListener("submit", (e) => {
      e.preventDefault();
      run(samples, () => showGrid(parseSeed($("seed-start").value, "The first seed")));
    });
    $("prev").addEventListener("click", () => page(state.start - PAGE));
    $("next").addEventListener("click", () => page(state.start + PAGE));
    $("random").addEventListener("click", () => page(Math.floor(Math.random() * (2 ** 31 - PAGE))));
    $("selection").addEventListener("change", () => {
      clearError();
      try {
        readSelection();
      } catch (e) {
        showError(e.message);
      }
    });
    $("clear-selection").addEventListener("click", () => {
      $("selection").value = "";
      readSelection();
    });
    for (const button of document.querySelectorAll(".to-group")) {
      button.addEventListener("click", () => {
        clearError();
        try {
          readSelection();
          if (!state.selection.length) throw new PageError("The selection is empty: click samples first.");
          $(`arith-${button.dataset.group}`).value = state.selection.join(",");
          $("selection").value = "";
          readSelection();
        } catch (e) {
          showError(e.message);
        }
      });
    }
    $("walk-controls").addEventListener("submit", (e) => {
      e.preventDefault();
      run($("walk"), runWalk);
    });
    $("walk-slider").addEventListener("input", (e) => showStep(Number(e.target.value)));
    $("arith-controls").addEventListener("submit", (e) => {
      e.preventDefault();
      run($("arithmetic"), runArithmetic);
    });
    wireBoxes();
    for (const button of document.querySelectorAll(".copy-button")) {
      button.addEventListener("click", () => copy(button));
    }
  }

  async function init() {
    state.model = modelName();
    wire();
    const start = new URLSearchParams(window.location.search).get("seed");
    await run($("samples"), async () => {
      await loadMetadata();
      await showGrid(start === null ? 0 : parseSeed(start, "The seed in the address"));
    });
  }

  // The functions the tests check against NumPy.
  window.dcganExplorer = { slerp, lerp, linspace, pairwiseSum, mean, parseSeeds, state, boxes };
  init();
})();
