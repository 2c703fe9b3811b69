// The part of plotly.js the design-space map needs: its core with heatmap and contour traces
// (scatter is in the core). Built by build_plotly_map.sh into plotly-map.min.js.
var Plotly = require('plotly.js/lib/core');

Plotly.register([require('plotly.js/lib/heatmap'), require('plotly.js/lib/contour')]);
window.DoePlotly = Plotly;  // its own name: never replaces another copy of plotly.js on the page
