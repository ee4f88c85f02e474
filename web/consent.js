// Consent, shared by the full page (main.js) and the widget's frame (embed.js): nothing heavy (the
// wasm, the model, the swarm's WebRTC) loads before the visitor clicks, and the choice is
// remembered until they take it back. In the widget's frame the browser partitions storage by the
// embedding site, so there the choice holds for that site only.

const KEY = 'tabswarm.consent';

export function rememberConsent(yes) {
  try {
    if (yes) localStorage.setItem(KEY, 'yes');
    else localStorage.removeItem(KEY);
  } catch {
    // Storage refused (private mode, blocked third-party storage): the choice lasts this visit.
  }
}

export function consentRemembered() {
  try {
    return localStorage.getItem(KEY) === 'yes';
  } catch {
    return false;
  }
}

// Resolves once `ready()` holds; rejects naming `what` after `timeoutMs`.
export function until(ready, what, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const look = () => {
      if (ready()) resolve();
      else if (performance.now() - started > timeoutMs) reject(new Error(`gave up waiting for ${what}`));
      else setTimeout(look, 100);
    };
    look();
  });
}

// Loads the client (the glue, then the wasm) and starts the page's Rust side: the worker, its GPU
// check, the swarm node. Only ever called after a click (or a remembered one).
export async function loadClient() {
  const client = await import('./pkg/tabswarm_client.js');
  await client.default();
  client.start_page();
  return client;
}

// The train button the GPU check recommends (`#backend`'s state), once the check has run.
export async function recommendedButton() {
  const backend = document.getElementById('backend');
  await until(() => ['webgpu', 'cpu'].includes(backend.dataset.state), 'the GPU check');
  return document.getElementById(backend.dataset.state === 'webgpu' ? 'train-webgpu' : 'train-cpu');
}

// Presses `button` once it can be pressed, if the visitor still wants it by then.
export async function pressWhenReady(button, stillWanted = () => true) {
  await until(() => !button.disabled, `the "${button.textContent}" button`);
  if (stillWanted()) button.click();
}
