// <tabswarm-widget relay="https://relay.example" budget="50">: lets a site's visitors lend spare
// compute to a Tabswarm swarm. Embed with
//   <script type="module" src="https://relay.example/widget.js"></script>
//   <tabswarm-widget budget="50"></tabswarm-widget>
// The element draws a small card around an <iframe> of the relay's /embed page. Everything heavy
// (the wasm, the model, WebRTC, the tab's key, the wallet) lives in that frame, in the relay's
// origin, and starts only when the visitor clicks "Contribute" there. The host page reads what the
// frame does from the `state` (idle, running, paused, error) and `rounds` attributes and the
// `tabswarm:state` event, and may call pause() and resume(); nothing more crosses.

const SCRIPT = new URL(import.meta.url);
const STATES = ['idle', 'running', 'paused', 'error'];

function clampBudget(raw) {
  const n = Number.parseInt(raw ?? '', 10);
  return Number.isFinite(n) ? Math.min(100, Math.max(1, n)) : 50;
}

const STYLE = `
:host { display: block; max-width: 26rem; font-family: system-ui, sans-serif; color-scheme: light dark; }
.card { border: 1px solid #8888; border-radius: 0.6rem; overflow: hidden; }
iframe { display: block; width: 100%; height: 12rem; border: 0; }
`;

class TabswarmWidget extends HTMLElement {
  #frame = null;
  #origin = null;
  #onMessage = null;

  connectedCallback() {
    if (this.#frame) return;
    let relay;
    try {
      relay = new URL(this.getAttribute('relay') || SCRIPT.origin, document.baseURI);
    } catch {
      this.#set('error', 0);
      return;
    }
    this.#origin = relay.origin;
    const src = new URL('/embed', relay);
    src.searchParams.set('budget', String(clampBudget(this.getAttribute('budget'))));
    // One long run: it keeps its place across pauses and swarm-model versions.
    src.searchParams.set('rounds', '10000');
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = STYLE;
    const card = document.createElement('div');
    card.className = 'card';
    const frame = document.createElement('iframe');
    frame.title = 'Tabswarm: lend this tab’s spare compute';
    frame.src = src.href;
    card.append(frame);
    root.append(style, card);
    this.#frame = frame;
    this.#onMessage = (event) => {
      if (event.origin !== this.#origin || event.source !== frame.contentWindow) return;
      const { type, state, rounds, height } = event.data ?? {};
      if (type !== 'tabswarm:state' || !STATES.includes(state)) return;
      if (Number.isFinite(height)) frame.style.height = `${Math.min(640, Math.max(64, height))}px`;
      this.#set(state, Number.isSafeInteger(rounds) && rounds >= 0 ? rounds : 0);
    };
    window.addEventListener('message', this.#onMessage);
    this.#set('idle', 0);
  }

  disconnectedCallback() {
    if (this.#onMessage) window.removeEventListener('message', this.#onMessage);
  }

  // Pause the frame's learning (it keeps its place) and resume it.
  pause() {
    this.#tell('tabswarm:pause');
  }

  resume() {
    this.#tell('tabswarm:resume');
  }

  #tell(type) {
    this.#frame?.contentWindow?.postMessage({ type }, this.#origin);
  }

  #set(state, rounds) {
    const changed = this.getAttribute('state') !== state || this.getAttribute('rounds') !== String(rounds);
    this.setAttribute('state', state);
    this.setAttribute('rounds', String(rounds));
    if (changed) {
      this.dispatchEvent(new CustomEvent('tabswarm:state', { detail: { state, rounds }, bubbles: true }));
    }
  }
}

if (!customElements.get('tabswarm-widget')) customElements.define('tabswarm-widget', TabswarmWidget);
