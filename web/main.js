// Page entry: load the wasm module and hand over to Rust (`start_page`). Any failure to load is
// shown on the page, never only in the console.
import init, { start_page } from './pkg/tabswarm_client.js';

function fail(message) {
  const status = document.getElementById('status');
  status.textContent = message;
  status.dataset.state = 'error';
}

try {
  await init();
  start_page();
} catch (error) {
  fail(`Tabswarm could not start: ${error}. This browser may lack WebAssembly support.`);
}
