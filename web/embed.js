// The widget's frame (/embed, framed by <tabswarm-widget>): asks first; after the visitor's click
// loads the client, runs the page's learning here (the backend its GPU check picks), paced to the
// embedder's budget and paused while the tab is hidden, and tells the embedding page its state and
// rounds. The choice is remembered for this embedding site (this frame's storage is partitioned
// by the top-level site) until "Stop" forgets it. Nothing heavy loads before the click.
import { politeCompute, describeReasons } from './polite.js';
import { consentRemembered, loadClient, pressWhenReady, recommendedButton, rememberConsent } from './consent.js';
import { focusOn, keepFocus } from './focus.js';

const params = new URLSearchParams(location.search);
const budget = clampBudget(params.get('budget'));
// The embedding page: the only window told anything, and the only one listened to.
const host = hostOrigin();

const $ = (id) => document.getElementById(id);
const contribute = $('embed-contribute');
const pauseButton = $('embed-pause');
const forget = $('embed-forget');
const line = $('embed-state');

let state = 'idle';
let rounds = 0; // finished in this visit, over every run
let roundsBefore = 0; // rounds of the runs that ended
let client = null; // the loaded wasm module, once
let control = null; // politeCompute, once the client runs
let contributing = false;
let pauseWhy = 'paused'; // why the run waits, in words

function clampBudget(raw) {
  const n = Number.parseInt(raw ?? '', 10);
  return Number.isFinite(n) ? Math.min(100, Math.max(1, n)) : 50;
}

function hostOrigin() {
  if (window.parent === window) return null;
  const ancestors = location.ancestorOrigins;
  if (ancestors && ancestors.length > 0) return ancestors[0];
  try {
    return document.referrer ? new URL(document.referrer).origin : null;
  } catch {
    return null;
  }
}

function tell() {
  // The content's own height (the document's would never be less than the frame's).
  const height = Math.ceil(document.querySelector('main').getBoundingClientRect().height);
  if (host) window.parent.postMessage({ type: 'tabswarm:state', state, rounds, height }, host);
}

function show(next, text) {
  state = next;
  line.dataset.state = next;
  line.textContent = text;
  tell();
}

function running() {
  const paused = pauseButton.dataset.paused === 'true';
  return contributing && !paused;
}

// Presses the train button the GPU check recommends, once it can be pressed.
async function startRun() {
  await pressWhenReady(await recommendedButton(), () => contributing);
}

function watchRuns() {
  const status = $('train-status');
  new MutationObserver(() => {
    const round = Number.parseInt(status.dataset.round ?? '0', 10) || 0;
    const runState = status.dataset.state;
    if (runState === 'error') {
      show('error', status.textContent);
      return;
    }
    rounds = roundsBefore + round;
    if (runState === 'done') {
      roundsBefore = rounds;
      if (contributing) startRun().catch((e) => show('error', `Could not go on: ${e.message}`));
    }
    if (running()) show('running', `Contributing: ${rounds} rounds learned in this visit.`);
    else if (contributing) show('paused', `Contributing, ${pauseWhy} (${rounds} rounds learned in this visit).`);
  }).observe(status, { attributes: true, attributeFilter: ['data-round', 'data-state'] });
}

async function start() {
  rememberConsent(true);
  contributing = true;
  const hadFocus = document.activeElement === contribute;
  contribute.hidden = true;
  pauseButton.hidden = false;
  if (hadFocus) focusOn(pauseButton); // the keyboard stays on what now matters
  forget.hidden = false;
  $('embed-details').hidden = false;
  $('embed-consent').hidden = true; // the state line says what goes on now
  try {
    if (!client) {
      show('running', 'Starting: loading the learning code…');
      client = await loadClient();
      watchRuns();
      control = politeCompute({
        budget,
        apply: client.set_pace,
        onChange: ({ paused, byVisitor, reasons }) => {
          pauseButton.dataset.paused = String(paused);
          pauseButton.textContent = byVisitor ? 'Resume' : 'Pause';
          if (!contributing) return;
          if (paused) {
            pauseWhy = byVisitor ? 'paused' : `waiting: ${describeReasons(reasons)}`;
            show('paused', `Contributing, ${pauseWhy} (${rounds} rounds learned in this visit).`);
          } else {
            show('running', `Contributing: ${rounds} rounds learned in this visit.`);
          }
        },
      });
    }
    show('running', 'Contributing: checking this device, then downloading the model…');
    await startRun();
  } catch (error) {
    show('error', `Could not start: ${error.message ?? error}`);
  }
}

function stop() {
  contributing = false;
  rememberConsent(false);
  $('train-stop')?.click();
  const hadFocus = [forget, pauseButton].includes(document.activeElement);
  contribute.hidden = false;
  pauseButton.hidden = true;
  forget.hidden = true;
  $('embed-consent').hidden = false;
  if (hadFocus) focusOn(contribute);
  show('idle', `Stopped after ${rounds} rounds. This site will ask again next time.`);
}

$('embed-budget').textContent = budget >= 100 ? 'all' : `${budget} %`;
// The card grows and shrinks with what the frame shows (the consent text, the details).
new ResizeObserver(tell).observe(document.querySelector('main'));
keepFocus();
contribute.addEventListener('click', start);
forget.addEventListener('click', stop);
pauseButton.addEventListener('click', () => {
  if (!control) return;
  if (pauseButton.textContent === 'Resume') control.resume();
  else control.pause();
});

window.addEventListener('message', (event) => {
  if (!host || event.source !== window.parent || event.origin !== host) return;
  const type = event.data?.type;
  if (type === 'tabswarm:pause') control?.pause();
  else if (type === 'tabswarm:resume') control?.resume();
});

if (consentRemembered()) start();
else show('idle', 'Not contributing.');
