// The page's live view, drawn from what the Rust page writes into the document (the `data-*`
// attributes of #train-status and #train-families, the same ones the tests read) and from the
// relay's public API (/api/swarm, /api/leaderboard, /api/peer/<id>): reward per round, accuracy
// per family, the swarm's peers and rollouts per minute, the leaderboard and this tab's share.
// Charts are uPlot (pinned in web/package.json, served from /vendor/).
import uPlot from './vendor/uPlot.esm.js';

const $ = (id) => document.getElementById(id);
const SWARM_POLL_MS = 10_000;
const BOARD_POLL_MS = 15_000;
const SWARM_POINTS = 90; // 15 minutes at one point per 10 s

function link(href) {
  const el = document.createElement('link');
  el.rel = 'stylesheet';
  el.href = href;
  document.head.append(el);
}

// The text colour of the page, so axes read in light and dark schemes alike.
function ink() {
  return getComputedStyle(document.body).color;
}

function chart(container, series, { yRange, xLabel, time = false } = {}) {
  const axis = () => ({ stroke: ink(), grid: { stroke: '#8883' }, ticks: { stroke: '#8883' } });
  const opts = {
    width: Math.max(240, container.clientWidth),
    height: 200,
    scales: { x: { time }, y: yRange ? { range: yRange } : {} },
    // Rounds are whole numbers: no ticks between them.
    axes: [{ ...axis(), label: xLabel, ...(time ? {} : { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }) }, axis()],
    legend: { live: false },
    series: [{}, ...series],
  };
  const empty = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, empty, container);
  new ResizeObserver(() => plot.setSize({ width: Math.max(240, container.clientWidth), height: 200 })).observe(
    container,
  );
  return plot;
}

const PALETTE = ['#1565c0', '#2e7d32', '#c62828', '#6a1b9a', '#ef6c00', '#00838f', '#5d4037', '#ad1457'];

// Reward and accuracy per family, one point per round; a new run (round 1 again) starts over.
function watchLearning() {
  const status = $('train-status');
  const rewardPlot = chart($('chart-reward'), [{ label: 'mean reward', stroke: PALETTE[0], width: 2 }], {
    yRange: [0, 1.1],
    xLabel: 'round',
  });
  let familyPlot = null;
  let families = [];
  let rounds = [];
  let rewards = [];
  let accuracy = {};
  let lastRound = 0;
  let visitRounds = 0;

  new MutationObserver(() => {
    const round = Number.parseInt(status.dataset.round ?? '', 10);
    const reward = Number.parseFloat(status.dataset.reward ?? '');
    if (!Number.isFinite(round) || !Number.isFinite(reward) || round === lastRound) return;
    if (round < lastRound) {
      rounds = [];
      rewards = [];
      accuracy = {};
    }
    visitRounds += round > lastRound ? round - lastRound : round;
    lastRound = round;
    $('you-rounds').textContent = String(visitRounds);
    rounds.push(round);
    rewards.push(reward);
    rewardPlot.setData([rounds, rewards]);

    const rows = [...document.querySelectorAll('#train-families tbody tr[data-family]')];
    const now = rows.map((row) => row.dataset.family);
    if (now.join() !== families.join()) {
      families = now;
      $('chart-families').textContent = '';
      familyPlot = chart(
        $('chart-families'),
        families.map((family, i) => ({ label: family, stroke: PALETTE[i % PALETTE.length], width: 1.5 })),
        { yRange: [0, 1], xLabel: 'round' },
      );
    }
    for (const row of rows) {
      (accuracy[row.dataset.family] ??= []).push(Number.parseFloat(row.dataset.accuracy));
    }
    if (familyPlot) {
      const pad = (values) => [...Array(rounds.length - values.length).fill(null), ...values];
      familyPlot.setData([rounds, ...families.map((family) => pad(accuracy[family] ?? []))]);
    }
  }).observe(status, { attributes: true, attributeFilter: ['data-round', 'data-reward'] });
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// Peers online and rollouts per minute, every 10 s, for the last 15 minutes.
function watchSwarm() {
  const plot = chart(
    $('chart-swarm'),
    [
      { label: 'peers', stroke: PALETTE[0], width: 2, scale: 'y' },
      { label: 'rollouts / min', stroke: PALETTE[1], width: 2, scale: 'y' },
    ],
    { time: true },
  );
  const times = [];
  const peers = [];
  const rollouts = [];
  const look = async () => {
    try {
      const stats = await getJson('/api/swarm');
      times.push(Date.now() / 1000);
      peers.push(stats.peers);
      rollouts.push(stats.rollouts_per_minute);
      for (const list of [times, peers, rollouts]) if (list.length > SWARM_POINTS) list.shift();
      plot.setData([times, peers, rollouts]);
      $('swarm-summary').textContent =
        `${stats.peers} peers online through ${stats.relays + 1} relay(s); ` +
        `${stats.rollouts_per_minute} rollouts in the last minute, ${stats.rollouts_total} in all.`;
    } catch (error) {
      $('swarm-summary').textContent = `The relay's swarm counters are unavailable (${error.message}).`;
    }
  };
  look();
  setInterval(look, SWARM_POLL_MS);
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function short(address) {
  return address.length > 14 ? `${address.slice(0, 8)}…${address.slice(-4)}` : address;
}

// The leaderboard, and this tab's verified reward, wallet and rank.
function watchBoard() {
  const body = document.querySelector('#leaderboard tbody');
  const look = async () => {
    let board = [];
    try {
      board = await getJson('/api/leaderboard');
      body.textContent = '';
      if (board.length === 0) {
        const row = body.insertRow();
        row.append(cell('No verified work is credited to a wallet yet.'));
        row.cells[0].colSpan = 4;
      }
      board.slice(0, 10).forEach((entry, i) => {
        const row = body.insertRow();
        row.dataset.address = entry.address;
        row.append(cell(String(i + 1)), cell(short(entry.address)), cell(entry.reward.toFixed(1)), cell(String(entry.rollouts)));
        row.cells[1].title = entry.address;
      });
    } catch (error) {
      body.textContent = '';
      const row = body.insertRow();
      row.append(cell(`The leaderboard is unavailable (${error.message}).`));
      row.cells[0].colSpan = 4;
    }
    const peer = $('net').dataset.peerId;
    if (!peer) return;
    try {
      const me = await getJson(`/api/peer/${encodeURIComponent(peer)}`);
      $('you-reward').textContent = `${me.reward.toFixed(1)} over ${me.rollouts} rollouts`;
      $('you-wallet').textContent = me.address ?? 'not bound (bind below to be credited)';
      const rank = me.address ? board.findIndex((entry) => entry.address === me.address) : -1;
      $('you-rank').textContent = rank >= 0 ? `${rank + 1} of ${board.length}` : '—';
    } catch {
      // A tab the relay has not seen yet has no record: keep the placeholders.
    }
  };
  look();
  setInterval(look, BOARD_POLL_MS);
}

export function startDashboard() {
  link('./vendor/uPlot.min.css');
  watchLearning();
  watchSwarm();
  watchBoard();
}
