// Keyboard users keep their place. Many of the page's buttons disable or hide themselves once
// pressed (Train on CPU while a run goes on, Stop once it has stopped, Bind while it binds); a
// focused control that disappears drops the keyboard focus to the top of the document, and the
// next Tab starts over from there. keepFocus moves the focus to the nearest control that can take
// it: the next one after it in the same section (Train on CPU → Stop, Stop → Save my model), else
// the one before it, else the section's heading. Shared by the full page and the widget's frame.

const CONTROLS = 'button, input, select, textarea, a[href], summary';

// Whether `el` can be reached with Tab now: enabled, rendered, not aria-disabled by choice.
function canTakeFocus(el) {
  if (!el || !el.isConnected || el.disabled || el.closest('[hidden]')) return false;
  if (el.getClientRects().length === 0) return false; // not rendered (a closed <details>, display: none)
  return el.tabIndex >= 0;
}

function nearestControl(lost, scope) {
  const all = [...scope.querySelectorAll(CONTROLS)];
  const after = all.filter((el) => lost.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
  const before = all.filter((el) => lost.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_PRECEDING).reverse();
  return [...after, ...before].find(canTakeFocus) ?? null;
}

// Moves the focus to `target` without scrolling the page under the reader.
export function focusOn(target) {
  target.focus({ preventScroll: true });
}

// Watches `root` for controls that lose the ability to hold the focus while they have it.
export function keepFocus(root = document.body) {
  let last = null; // the control that last had the focus
  root.addEventListener('focusin', (event) => {
    if (event.target.matches?.(CONTROLS)) last = event.target;
  });
  const rescue = () => {
    if (!last || canTakeFocus(last)) return;
    const active = document.activeElement;
    // Only when the focus is still on it or fell to the document: never steal it from elsewhere.
    if (active !== last && active !== document.body && active !== null) return;
    const scope = last.closest('section, details, main') ?? root;
    let target = nearestControl(last, scope);
    if (!target) {
      target = scope.querySelector('h1, h2, h3, summary') ?? null;
      if (target && target.tabIndex < 0 && target.localName !== 'summary') target.setAttribute('tabindex', '-1');
    }
    last = null;
    if (target) focusOn(target);
  };
  new MutationObserver(rescue).observe(root, {
    subtree: true,
    attributes: true,
    attributeFilter: ['disabled', 'hidden', 'open'],
  });
}
