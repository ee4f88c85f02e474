// Page entry. Before the visitor clicks *Contribute* (or a train button, or *Run the checks*) the
// page loads only this script, the charts and the relay's public counters: no wasm, no model, no
// WebRTC. The click loads the client (`start_page`), and *Contribute* then presses the train button
// the GPU check recommends, saying what it waits for meanwhile. A click is never lost: it is held
// until the client can take it. The choice is remembered (and revoked in one click). Any failure
// to load is shown on the page, never only in the console.
import { politeCompute, describeReasons } from './polite.js';
import { consentRemembered, loadClient, pressWhenReady, recommendedButton, rememberConsent } from './consent.js';
import { focusOn, keepFocus } from './focus.js';

const $ = (id) => document.getElementById(id);
const contribute = $('contribute-start');
const forget = $('consent-forget');
const line = $('consent-state');
const trainStatus = $('train-status');
const hasWebGpu = 'gpu' in navigator;

let loading = null; // the client's promise, once a click asked for it
let pauseWhy = null; // why polite compute holds the run, in words; null while it may run

// While a run goes on, Contribute says it cannot be pressed (aria-disabled) but keeps the keyboard
// focus if it has it: a disabled button would drop it.
function contributing(busy) {
  contribute.setAttribute('aria-disabled', String(busy));
}
const busy = () => contribute.getAttribute('aria-disabled') === 'true';

function say(state, text) {
  line.dataset.state = state;
  line.textContent = text;
}

function fail(message) {
  say('error', message);
  const status = $('status');
  status.textContent = message;
  status.dataset.state = 'error';
  $('diagnostics').open = true;
}

// Loads the client once; later calls share the first.
function load() {
  if (!loading) {
    say('loading', 'Starting: downloading the learning code (about 3.5 MB)…');
    loading = loadClient().then((client) => {
      // The whole tab's time, but none while it is hidden, on a low battery or under pressure.
      politeCompute({
        budget: 100,
        apply: client.set_pace,
        onChange: ({ paused, reasons }) => {
          pauseWhy = paused ? describeReasons(reasons) : null;
          showRun();
        },
      });
      say('loaded', 'The learning code is loaded.');
      return client;
    });
    loading.catch((error) => fail(`Tabswarm could not start: ${error}. This browser may lack WebAssembly support.`));
  }
  return loading;
}

// Contributes with `choice`: the id of a train button, or null for the one the GPU check picks.
async function start(choice) {
  rememberConsent(true);
  forget.hidden = false;
  contributing(true);
  try {
    await load();
    let button = choice ? $(choice) : null;
    if (!button) {
      say('waiting', 'Checking this device’s GPU to choose between WebGPU and the CPU…');
      button = await recommendedButton();
    }
    say('waiting', `Waiting for the worker to take “${button.textContent}”…`);
    await pressWhenReady(button);
    showRun();
  } catch (error) {
    fail(`Could not start contributing: ${error.message ?? error}`);
    contributing(false);
  }
}

// The contribute line follows the run: learning, paused and why, or done.
function showRun() {
  const state = trainStatus.dataset.state;
  if (state === 'running') {
    contributing(true);
    if (pauseWhy) say('paused', `Contributing, paused: ${pauseWhy}. It goes on where it left off.`);
    else say('running', 'Contributing: this tab is learning with the swarm.');
  } else if (loading && (state === 'done' || state === 'error')) {
    contributing(false);
    say('idle', state === 'done' ? 'The run ended. Contribute again to go on learning.' : 'The run stopped.');
  }
}
new MutationObserver(showRun).observe(trainStatus, { attributes: true, attributeFilter: ['data-state'] });

// Before the client runs, these buttons mean "contribute this way"; once it runs, the client's own
// handlers take their clicks.
for (const id of ['train-webgpu', 'train-cpu']) {
  const button = $(id);
  button.addEventListener('click', () => {
    if (!loading) start(id);
    else {
      rememberConsent(true); // a train click after Run the checks is a choice to contribute too
      forget.hidden = false;
    }
  });
  button.disabled = id === 'train-webgpu' && !hasWebGpu;
}
contribute.addEventListener('click', () => {
  if (!busy()) start(null);
});
$('run-checks').addEventListener('click', () => {
  $('run-checks').disabled = true;
  load().catch(() => {});
});
$('run-checks').disabled = false;
forget.addEventListener('click', () => {
  rememberConsent(false);
  const hadFocus = document.activeElement === forget;
  forget.hidden = true;
  if (hadFocus) focusOn(contribute);
  say(line.dataset.state, `${line.textContent} This page will ask before contributing next time.`);
});
contribute.disabled = false;
contributing(false);
keepFocus();

if (consentRemembered()) {
  say('waiting', 'You chose to contribute on an earlier visit: starting.');
  start(null);
}

// The charts and the leaderboard are extras: the page works without them.
try {
  const { startDashboard } = await import('./dashboard.js');
  startDashboard();
} catch (error) {
  console.warn('tabswarm: the charts could not load', error);
}
