// Polite compute, shared by the full page and the widget's frame: the learning run waits while the
// tab is hidden, while the battery is discharging below 20 % (Battery Status API, where present)
// and while the CPU is under `serious` or `critical` pressure (Compute Pressure API, where present),
// and holds `budget` percent of wall time otherwise. `apply(budget, paused)` is the page's
// `set_pace`; the worker keeps its place, so a pause loses no round.

const LOW_BATTERY = 0.2;

export function politeCompute({ budget = 100, apply, onChange = () => {} }) {
  const reasons = new Set();
  let byVisitor = false;

  function update() {
    const paused = byVisitor || reasons.size > 0;
    try {
      apply(budget, paused);
    } catch (error) {
      console.warn(`tabswarm: cannot pace the learning run: ${error}`);
    }
    onChange({ paused, byVisitor, reasons: [...reasons] });
  }

  function hold(reason, on) {
    if (on === reasons.has(reason)) return;
    if (on) reasons.add(reason);
    else reasons.delete(reason);
    update();
  }

  document.addEventListener('visibilitychange', () => hold('hidden', document.visibilityState === 'hidden'));
  if (document.visibilityState === 'hidden') reasons.add('hidden');

  if (typeof navigator.getBattery === 'function') {
    navigator
      .getBattery()
      .then((battery) => {
        const check = () => hold('battery', !battery.charging && battery.level < LOW_BATTERY);
        battery.addEventListener('chargingchange', check);
        battery.addEventListener('levelchange', check);
        check();
      })
      .catch(() => {});
  }

  if (typeof globalThis.PressureObserver === 'function') {
    try {
      const observer = new globalThis.PressureObserver((records) => {
        const state = records[records.length - 1]?.state;
        hold('pressure', state === 'serious' || state === 'critical');
      });
      observer.observe('cpu').catch(() => {});
    } catch {
      // Not allowed here (a permissions policy, an old browser): nothing to watch.
    }
  }

  update();
  return {
    pause() {
      byVisitor = true;
      update();
    },
    resume() {
      byVisitor = false;
      update();
    },
  };
}

// What a pause's reasons mean, in words.
export function describeReasons(reasons) {
  const words = { hidden: 'this tab is hidden', battery: 'the battery is low', pressure: 'the computer is busy' };
  return reasons.map((r) => words[r] ?? r).join(', ');
}
