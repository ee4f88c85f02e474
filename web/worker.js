// Worker entry: load the same wasm module and let Rust (`start_worker`) answer the page.
import init, { start_worker } from './pkg/tabswarm_client.js';

try {
  await init();
  start_worker();
} catch (error) {
  self.postMessage(JSON.stringify({ kind: 'failed', message: `The worker could not start: ${error}` }));
}
