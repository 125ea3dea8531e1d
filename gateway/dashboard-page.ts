// The dashboard's one HTML page: no build step, no CDN (Lid runs offline), vanilla JS that polls
// /dashboard/api/overview every few seconds and draws a selected job's timeline from /dashboard/api/jobs/:id/trace.
// Everything from the server is put in the page with textContent, never as HTML, so job data (tenant-chosen image
// names, error messages) cannot inject markup. The inline script runs under the CSP nonce the route sends.

const STYLE = `
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f5f6f8; }
  header { background: #1d2430; color: #fff; padding: 10px 20px; display: flex; justify-content: space-between; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: 1fr 1fr; }
  section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 14px; overflow: auto; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 4px 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eef0f3; white-space: nowrap; }
  th { color: #5b6472; font-weight: 600; }
  tr.job-row { cursor: pointer; } tr.job-row:hover, tr.job-row.selected { background: #eaf1fd; }
  .muted { color: #7a8391; } .bad { color: #b42318; } .good { color: #067647; }
  .span-row { display: grid; grid-template-columns: 260px 1fr; align-items: center; height: 24px; }
  .span-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { position: relative; height: 16px; background: #f0f2f5; }
  .bar { position: absolute; top: 0; height: 16px; background: #3b7be0; border-radius: 2px; min-width: 2px; }
  .bar.error { background: #d9534f; }
  code { font-size: 12px; }
`;

const SCRIPT = `
const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;
let selected = null;

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '-' : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}
function table(id, heads, rows, fill, onClick) {
  const el = $(id);
  el.replaceChildren();
  const head = document.createElement('tr');
  for (const h of heads) { const th = document.createElement('th'); th.textContent = h; head.appendChild(th); }
  el.appendChild(head);
  for (const row of rows) {
    const tr = document.createElement('tr');
    fill(tr, row);
    if (onClick) {
      tr.className = 'job-row' + (row.id === selected ? ' selected' : '');
      tr.dataset.id = row.id;
      tr.addEventListener('click', () => onClick(row));
    }
    el.appendChild(tr);
  }
  if (!rows.length) { const tr = document.createElement('tr'); cell(tr, 'none', 'muted'); el.appendChild(tr); }
}
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : null);
const ms = (n) => (typeof n === 'number' ? n.toFixed(1) + ' ms' : null);
const stateClass = (s) => (s === 'error' ? 'bad' : s === 'completed' ? 'good' : '');
function jobCells(tr, j) {
  cell(tr, j.id); cell(tr, j.tenant); cell(tr, j.image); cell(tr, j.state, stateClass(j.state));
  cell(tr, j.status); cell(tr, time(j.createdAt)); cell(tr, ms(j.queueMs)); cell(tr, ms(j.wallMs));
}
const JOB_HEADS = ['job', 'tenant', 'image', 'state', 'status', 'created', 'queue wait', 'wall'];

async function refresh() {
  try {
    const res = await fetch('/dashboard/api/overview', { credentials: 'same-origin' });
    if (!res.ok) throw new Error('overview: HTTP ' + res.status);
    const o = await res.json();
    $('updated').textContent = 'updated ' + time(o.at);
    $('queue-name').textContent = o.queue.name;
    table('queue', ['state', 'jobs'], Object.entries(o.queue.counts), (tr, [k, v]) => { cell(tr, k); cell(tr, v); });
    table('workers', ['worker', 'capacity', 'running', 'free', 'last heartbeat', ''], o.workers, (tr, w) => {
      cell(tr, w.id); cell(tr, w.concurrency); cell(tr, w.running);
      cell(tr, typeof w.concurrency === 'number' ? w.concurrency - w.running : null);
      cell(tr, time(w.lastHeartbeat)); cell(tr, w.alive ? 'alive' : 'silent', w.alive ? 'good' : 'bad');
    });
    table('running', JOB_HEADS, o.running, jobCells, show);
    table('recent', JOB_HEADS, o.recent, jobCells, show);
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = String(e.message || e);
  }
}

function depthOf(span, byId) {
  let d = 0;
  for (let p = byId.get(span.parentSpanId); p && d < 20; p = byId.get(p.parentSpanId)) d++;
  return d;
}

async function show(job) {
  selected = job.id;
  for (const tr of document.querySelectorAll('tr.job-row')) tr.classList.toggle('selected', tr.dataset.id === job.id);
  $('timeline-title').textContent = 'Timeline of ' + job.id;
  const res = await fetch('/dashboard/api/jobs/' + encodeURIComponent(job.id) + '/trace', { credentials: 'same-origin' });
  const box = $('timeline');
  box.replaceChildren();
  if (!res.ok) { box.textContent = 'no timeline: HTTP ' + res.status; return; }
  const t = await res.json();
  $('timeline-source').textContent = t.source === 'trace' ? 'from trace ' + t.traceId : 'from the job record (not traced)';
  const spans = t.spans.map((s) => ({ ...s, t0: Date.parse(s.start) }));
  if (!spans.length) { box.textContent = 'no spans'; return; }
  const start = Math.min(...spans.map((s) => s.t0));
  const end = Math.max(...spans.map((s) => s.t0 + s.durationMs));
  const total = Math.max(end - start, 0.001);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (const s of spans) {
    const row = document.createElement('div');
    row.className = 'span-row';
    const label = document.createElement('div');
    label.className = 'span-label';
    label.style.paddingLeft = depthOf(s, byId) * 16 + 'px';
    label.textContent = s.name + ' (' + s.durationMs.toFixed(2) + ' ms)';
    const track = document.createElement('div');
    track.className = 'track';
    const bar = document.createElement('div');
    bar.className = 'bar' + (s.status === 'error' ? ' error' : '');
    bar.style.left = ((s.t0 - start) / total) * 100 + '%';
    bar.style.width = (s.durationMs / total) * 100 + '%';
    bar.title = s.name + ': ' + s.durationMs.toFixed(3) + ' ms';
    track.appendChild(bar);
    row.append(label, track);
    box.appendChild(row);
  }
}

refresh();
setInterval(refresh, POLL_MS);
`;

export function dashboardPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lid dashboard</title>
<style>${STYLE}</style>
</head>
<body>
<header><strong>Lid dashboard</strong><span><span id="error" class="bad"></span> <span id="updated"></span></span></header>
<main>
  <section id="queue-section"><h2>Queue <code id="queue-name"></code></h2><table id="queue"></table></section>
  <section id="workers-section"><h2>Workers</h2><table id="workers"></table></section>
  <section id="running-section" class="wide"><h2>Running jobs</h2><table id="running"></table></section>
  <section id="recent-section" class="wide"><h2>Recent jobs</h2><table id="recent"></table></section>
  <section id="timeline-section" class="wide">
    <h2 id="timeline-title">Timeline</h2><div id="timeline-source" class="muted">click a job to draw its timeline</div>
    <div id="timeline"></div>
  </section>
</main>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>`;
}
