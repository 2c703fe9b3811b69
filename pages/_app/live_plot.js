// A plotly figure that stays mounted across reruns (pages/_app/live_plot.py). Each rerun sends the
// figure's traces and layout as JSON text; only the traces whose text changed are parsed again, and
// Plotly.react redraws the chart in place instead of building it anew.
//
// The page marks the chart while it is drawing: data-doe-drawing="1" until the newest figure is on
// screen (the browser tests wait for it), and data-doe-drawn counts the figures drawn.
const loading = {};

function plotlyFrom(src) {
  if (window.DoePlotly) return Promise.resolve(window.DoePlotly);
  if (!loading[src]) {
    loading[src] = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.async = true;
      script.onload = () => (window.DoePlotly ? resolve(window.DoePlotly)
                                              : reject(new Error(src + " did not define DoePlotly")));
      script.onerror = () => { delete loading[src]; reject(new Error("could not load " + src)); };
      document.head.appendChild(script);
    });
  }
  return loading[src];
}

// After loading, one small chart like the design-space map (heatmap with colour bar and hover data,
// contour line, legend, title and notes) drawn off screen: the first real map then does not pay for
// compiling plotly's code for each of these parts.
let warmed = null;
function warmUp(Plotly, font) {
  if (!warmed) {
    warmed = (async () => {
      const div = document.createElement("div");
      div.style.cssText = "position:absolute;left:-9999px;top:0;width:600px;height:400px";
      document.body.appendChild(div);
      const z = [[0, 0.5, 1], [0.5, 1, 0.5], [1, 0.5, 0]];
      const custom = z.map((row) => row.map((v) => [v, v]));
      try {
        await Plotly.newPlot(div, [
          {type: "heatmap", z, customdata: custom, colorbar: {title: {text: "P"}},
           hovertemplate: "%{customdata[0]:.3f}<extra></extra>"},
          {type: "contour", z, showscale: false, contours: {coloring: "none", start: 0.5, end: 0.5, size: 1},
           name: "edge", showlegend: true},
          {type: "scatter", x: [null], y: [null], mode: "markers", name: "a"},
          {type: "scatter", x: [0, 1, 1, 0, 0], y: [0, 0, 1, 1, 0], mode: "lines", line: {dash: "dash"}, name: "b"},
          {type: "scatter", x: [1], y: [1], mode: "markers", marker: {symbol: "star"}, name: "c"}],
          {title: {text: "a", subtitle: {text: "b"}}, annotations: [{text: "c", xref: "paper", yref: "paper", x: 0, y: -0.2}],
           xaxis: {title: {text: "x"}, ticklabeloverflow: "allow"}, yaxis: {title: {text: "y"}, ticklabeloverflow: "allow"},
           font: {family: font}});
        Plotly.purge(div);
      } finally {
        div.remove();
      }
    })().catch(() => {});
  }
  return warmed;
}

const DTYPES = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                u2: Uint16Array, i1: Int8Array, u1: Uint8Array};

function base64Bytes(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// plotly.py writes numpy arrays as {dtype, bdata (base64), shape}. Decoded here once, so an
// unchanged trace keeps the very same arrays from one rerun to the next.
function decoded(value) {
  if (Array.isArray(value)) return value.map(decoded);
  if (value === null || typeof value !== "object") return value;
  if (typeof value.bdata === "string" && DTYPES[value.dtype]) {
    const bytes = base64Bytes(value.bdata);
    const flat = new DTYPES[value.dtype](bytes.buffer);
    if (value.shape === undefined) return flat;
    const dims = String(value.shape).split(",").map(Number);
    const block = (offset, level) => {
      if (level === dims.length - 1) return flat.subarray(offset, offset + dims[level]);
      const step = dims.slice(level + 1).reduce((a, b) => a * b, 1);
      return Array.from({length: dims[level]}, (_, i) => block(offset + i * step, level + 1));
    };
    return block(0, 0);
  }
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = decoded(v);
  return out;
}

const charts = new WeakMap();  // the component's element -> its chart

async function draw(chart, Plotly) {
  while (chart.next) {  // only the newest figure: one that arrived while drawing replaces the rest
    const data = chart.next;
    chart.next = null;
    const traces = data.traces.map((text, i) =>
      chart.texts[i] === text ? chart.traces[i] : decoded(JSON.parse(text)));
    await Plotly.react(chart.div, traces, JSON.parse(data.layout), data.config);
    chart.texts = data.traces;
    chart.traces = traces;
    chart.div.dataset.doeDrawn = String(Number(chart.div.dataset.doeDrawn || 0) + 1);
  }
}

// Run f once the user has not clicked, typed, scrolled or focused a widget for `ms` and the browser is idle:
// the work then does not hold up a click (loading and warming up plotly.js occupies the main thread).
let preloading = false;
function whenQuiet(ms, f) {
  const events = ["pointerdown", "keydown", "wheel", "input", "focusin"];
  let timer;
  const done = () => {
    events.forEach((e) => window.removeEventListener(e, arm, true));
    (window.requestIdleCallback || setTimeout)(f);
  };
  const arm = () => { clearTimeout(timer); timer = setTimeout(done, ms); };
  events.forEach((e) => window.addEventListener(e, arm, true));
  arm();
}

export default async function ({parentElement, data}) {
  if (data.preload) {  // a page that comes before the map: load plotly.js while the user reads it
    if (!preloading && !window.DoePlotly) {
      preloading = true;
      whenQuiet(600, () => plotlyFrom(data.src).then((Plotly) => warmUp(Plotly, data.font)).catch(() => { preloading = false; }));
    }
    return;
  }
  let chart = charts.get(parentElement);
  if (!chart) {
    const div = document.createElement("div");
    div.className = "doe-live-plot";
    div.style.width = "100%";
    div.style.minHeight = data.height + "px";
    parentElement.appendChild(div);
    chart = {div, texts: [], traces: [], next: null, busy: false};
    charts.set(parentElement, chart);
  }
  chart.next = data;
  if (chart.busy) return;  // the running draw picks up this figure next
  chart.busy = true;
  chart.div.dataset.doeDrawing = "1";
  try {
    const Plotly = await plotlyFrom(data.src);
    await draw(chart, Plotly);
  } catch (error) {
    chart.div.textContent = "The chart could not be drawn (" + error.message + "). Reload the page.";
    chart.texts = [];
    chart.traces = [];
  } finally {
    chart.busy = false;
    chart.div.dataset.doeDrawing = "0";
  }
}
