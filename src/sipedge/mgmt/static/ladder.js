// The SIP ladder diagram of one call: a column per address, an arrow per message, top down.
// Every text from the wire goes into the page as text nodes (never as markup).
const SVG = 'http://www.w3.org/2000/svg';
const COL = 230;
const LEFT = 90;
const TOP = 56;
const ROW = 36;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// "INVITE", "180 Ringing", "200 OK": the start line without URI or version.
export function summary(firstLine) {
  if (firstLine.startsWith('SIP/2.0 ')) return firstLine.slice(8);
  return firstLine.split(' ')[0];
}

function kind(label) {
  const code = Number.parseInt(label, 10);
  if (Number.isNaN(code)) return 'request';
  if (code < 200) return 'provisional';
  return code < 300 ? 'success' : 'failure';
}

function participants(messages) {
  const seen = [];
  for (const m of messages) {
    for (const a of [m.src, m.dst]) if (!seen.includes(a)) seen.push(a);
  }
  return seen;
}

// Draw ``messages`` (oldest first) into ``container``; ``onSelect(index)`` on a click.
export function drawLadder(container, messages, onSelect) {
  const cols = participants(messages);
  const x = (a) => LEFT + cols.indexOf(a) * COL + COL / 2;
  const width = LEFT + cols.length * COL;
  const height = TOP + messages.length * ROW + 24;
  const root = svg('svg', {
    class: 'ladder', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': 'SIP ladder diagram',
  });
  const defs = svg('defs');
  for (const k of ['request', 'provisional', 'success', 'failure']) {
    const marker = svg('marker', {
      id: `arrow-${k}`, viewBox: '0 0 10 10', refX: 10, refY: 5,
      markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse',
    });
    marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: `head ${k}` }));
    defs.append(marker);
  }
  root.append(defs);
  const ours = new Set(messages.map((m) => (m.direction === 'in' ? m.dst : m.src)));
  cols.forEach((a) => {
    const name = ours.has(a) ? `${a} (sipedge)` : a;
    root.append(svg('text', { x: x(a), y: 20, class: 'party', 'text-anchor': 'middle' }, name));
    root.append(svg('line', { x1: x(a), y1: 30, x2: x(a), y2: height - 8, class: 'lifeline' }));
  });
  const t0 = messages.length ? messages[0].time : 0;
  messages.forEach((m, i) => {
    const label = summary(m.first_line);
    const k = kind(label);
    const y = TOP + i * ROW + 14;
    const g = svg('g', {
      class: `msg ${k}`, tabindex: 0, 'data-index': i, 'data-label': label,
      'data-direction': m.direction,
    });
    g.append(svg('title', {}, m.first_line));
    g.append(svg('text', { x: 8, y: y + 4, class: 'time' }, `+${((m.time - t0) * 1000).toFixed(0)} ms`));
    const x1 = x(m.src);
    const x2 = x(m.dst);
    g.append(svg('rect', {
      x: Math.min(x1, x2), y: y - 18, width: Math.max(Math.abs(x2 - x1), 8), height: 24, class: 'hit',
    }));
    g.append(svg('line', { x1, y1: y, x2, y2: y, class: 'arrow', 'marker-end': `url(#arrow-${k})` }));
    g.append(svg('text', {
      x: (x1 + x2) / 2, y: y - 5, class: 'label', 'text-anchor': 'middle',
    }, `${label} (${m.transport})`));
    const pick = () => onSelect(i);
    g.addEventListener('click', pick);
    g.addEventListener('keydown', (e) => { if (e.key === 'Enter') pick(); });
    root.append(g);
  });
  container.replaceChildren(root);
  return root;
}
