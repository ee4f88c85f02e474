// Page entry: load the wasm module and hand over to Rust (`start_page`), then the charts and the
// leaderboard. Any failure to load is shown on the page, never only in the console.
import init, { start_page, set_pace } from './pkg/tabswarm_client.js';
import { politeCompute } from './polite.js';

function fail(message) {
  const status = document.getElementById('status');
  status.textContent = message;
  status.dataset.state = 'error';
  document.getElementById('diagnostics').open = true;
}

try {
  await init();
  start_page();
  // The whole tab's time, but none while it is hidden, on a low battery or under pressure.
  politeCompute({ budget: 100, apply: set_pace });
} catch (error) {
  fail(`Tabswarm could not start: ${error}. This browser may lack WebAssembly support.`);
}

// The charts and the leaderboard are extras: the page works without them.
try {
  const { startDashboard } = await import('./dashboard.js');
  startDashboard();
} catch (error) {
  console.warn('tabswarm: the charts could not load', error);
}
