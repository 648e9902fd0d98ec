// The front page: study list (QIDO-RS) with rendered thumbnails, search, STOW-RS upload of files and folders,
// rendered and signed URLs, "open in viewer". Every value from the server goes through textContent or an
// attribute setter, never parsed as HTML.
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
};

let config = { dicomWebRoot: '/dicom-web', auth: false, signedLinks: false, viewer: null };
const ROOT = () => config.dicomWebRoot;
const TOKEN_KEY = 'dicomweb-token';

function headers(extra = {}) {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function reasonOf(res) {
  try { const j = await res.json(); return j.error || res.statusText; } catch { return res.statusText; }
}

// --- DICOM JSON helpers
const val = (ds, tag) => ds?.[tag]?.Value;
const str = (ds, tag) => {
  const v = val(ds, tag);
  if (!v) return '';
  return v.map((x) => (x && typeof x === 'object' ? x.Alphabetic ?? '' : String(x))).join('\\');
};
const fmtDate = (d) => (/^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : d);

// --- authentication
function setupAuth() {
  if (!config.auth) return;
  $('#auth').hidden = false;
  const state = () => { $('#token-state').textContent = sessionStorage.getItem(TOKEN_KEY) ? 'token set (this tab only)' : 'no token'; };
  $('#token-save').addEventListener('click', () => {
    const t = $('#token').value.trim().replace(/^Bearer\s+/i, '');
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $('#token').value = '';
    state(); search();
  });
  $('#token-clear').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); state(); search(); });
  state();
}

// --- study list
const INCLUDE = ['00081030', '00201208', '00080061', '00100010', '00100020', '00080020'];

function queryFromForm() {
  const f = new FormData($('#search-form'));
  const q = new URLSearchParams();
  for (const k of INCLUDE) q.append('includefield', k);
  const name = String(f.get('PatientName') || '').trim();
  if (name) q.set('PatientName', /[*?]/.test(name) ? name : `${name}*`);
  const id = String(f.get('PatientID') || '').trim();
  if (id) q.set('PatientID', id);
  const from = String(f.get('from') || '').replace(/-/g, '');
  const to = String(f.get('to') || '').replace(/-/g, '');
  if (from || to) q.set('StudyDate', from === to ? from : `${from}-${to}`);
  const mod = String(f.get('ModalitiesInStudy') || '').trim().toUpperCase();
  if (mod) q.set('ModalitiesInStudy', mod);
  q.set('limit', '200');
  return q;
}

const objectUrls = [];
async function thumbnail(img, path) {
  try {
    const res = await fetch(`${ROOT()}${path}?viewport=128,128`, { headers: headers({ Accept: 'image/jpeg, image/png' }) });
    if (!res.ok) { img.alt = `no thumbnail (${res.status})`; return; }
    const url = URL.createObjectURL(await res.blob());
    objectUrls.push(url);
    img.src = url;
  } catch { img.alt = 'no thumbnail'; }
}

let searchSeq = 0;
async function search() {
  const seq = ++searchSeq;
  const tbody = $('#studies tbody');
  $('#status').textContent = 'Searching…';
  $('#status').className = '';
  let res;
  try {
    res = await fetch(`${ROOT()}/studies?${queryFromForm()}`, { headers: headers({ Accept: 'application/dicom+json' }) });
  } catch (e) { $('#status').textContent = `Search failed: ${e.message}`; $('#status').className = 'error'; return; }
  if (seq !== searchSeq) return;
  if (!res.ok) { $('#status').textContent = `Search failed (${res.status}): ${await reasonOf(res)}`; $('#status').className = 'error'; return; }
  const studies = res.status === 204 ? [] : await res.json();
  if (seq !== searchSeq) return;
  while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
  tbody.replaceChildren();
  const warning = res.headers.get('warning');
  $('#status').textContent = `${studies.length} ${studies.length === 1 ? 'study' : 'studies'}${warning ? ` (${warning})` : ''}`;
  for (const s of studies) {
    const uid = str(s, '0020000D');
    const img = el('img', { class: 'thumb', alt: '' });
    const viewer = config.viewer ? el('a', { href: `${config.viewer}viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}`, class: 'open-viewer', target: '_blank', rel: 'noopener' }, 'Open in viewer') : '';
    const more = el('button', { type: 'button', class: 'more' }, 'Images');
    const row = el('tr', { class: 'study', 'data-study': uid },
      el('td', {}, img), el('td', {}, str(s, '00100010')), el('td', {}, str(s, '00100020')), el('td', {}, fmtDate(str(s, '00080020'))),
      el('td', {}, str(s, '00080061')), el('td', {}, str(s, '00081030')), el('td', {}, str(s, '00201208')), el('td', {}, more, ' ', viewer));
    tbody.append(row);
    more.addEventListener('click', () => toggleDetails(row, uid));
    thumbnail(img, `/studies/${encodeURIComponent(uid)}/thumbnail`);
  }
}

async function toggleDetails(row, study) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains('details')) { next.remove(); return; }
  const cell = el('td', { colspan: '8' }, 'Loading…');
  row.after(el('tr', { class: 'details' }, cell));
  try {
    const sres = await fetch(`${ROOT()}/studies/${encodeURIComponent(study)}/series`, { headers: headers({ Accept: 'application/dicom+json' }) });
    if (!sres.ok) throw new Error(`${sres.status}: ${await reasonOf(sres)}`);
    const series = sres.status === 204 ? [] : await sres.json();
    cell.replaceChildren();
    for (const se of series) {
      const seUid = str(se, '0020000E');
      const ires = await fetch(`${ROOT()}/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(seUid)}/instances?limit=1`, { headers: headers({ Accept: 'application/dicom+json' }) });
      if (!ires.ok) { cell.append(el('div', { class: 'error' }, `series ${seUid}: ${ires.status} ${await reasonOf(ires)}`)); continue; }
      const inst = (ires.status === 204 ? [] : await ires.json())[0];
      if (!inst) continue;
      const path = `/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(seUid)}/instances/${encodeURIComponent(str(inst, '00080018'))}/frames/1/rendered`;
      const url = `${location.origin}${ROOT()}${path}`;
      const input = el('input', { class: 'url rendered-url', readonly: '', value: url });
      const copy = el('button', { type: 'button' }, 'Copy');
      copy.addEventListener('click', () => copyText(input));
      const img = el('img', { class: 'thumb', alt: '' });
      const box = el('div', { class: 'series', 'data-series': seUid }, img,
        el('div', {}, el('div', {}, `${str(se, '00080060')} ${str(se, '0008103E')} — series ${str(se, '00200011')}, ${str(se, '00201209')} instance(s)`),
          el('div', {}, 'Rendered URL (first image): ', input, ' ', copy)));
      if (config.signedLinks) {
        const sign = el('button', { type: 'button', class: 'sign' }, 'Signed link (1 h)');
        const out = el('span', { class: 'signed' });
        sign.addEventListener('click', () => signedLink(path, out));
        box.lastChild.append(el('div', {}, sign, ' ', out));
      }
      cell.append(box);
      thumbnail(img, `/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(seUid)}/thumbnail`);
    }
    if (!cell.childNodes.length) cell.textContent = 'No series.';
  } catch (e) { cell.replaceChildren(el('span', { class: 'error' }, `Could not list series: ${e.message}`)); }
}

async function signedLink(path, out) {
  out.textContent = '…';
  const res = await fetch(`${ROOT()}/signed-links`, {
    method: 'POST', headers: headers({ 'Content-Type': 'application/json' }), body: JSON.stringify({ path, expiresIn: 3600 }),
  });
  if (!res.ok) { out.replaceChildren(el('span', { class: 'error' }, `${res.status}: ${await reasonOf(res)}`)); return; }
  const { url, expires } = await res.json();
  const input = el('input', { class: 'url signed-url', readonly: '', value: url });
  const copy = el('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', () => copyText(input));
  out.replaceChildren(input, ' ', copy, ` expires ${new Date(expires * 1000).toISOString()}`);
}

function copyText(input) {
  input.select();
  if (navigator.clipboard) navigator.clipboard.writeText(input.value).catch(() => document.execCommand('copy'));
  else document.execCommand('copy');
}

// --- upload
/** Files of a drop: folders are walked (webkitGetAsEntry), in full (readEntries returns batches). */
async function droppedFiles(dt) {
  const entries = [...dt.items].map((i) => (i.kind === 'file' && i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.some(Boolean)) return [...dt.files];
  const out = [];
  const walk = async (entry) => {
    if (!entry) return;
    if (entry.isFile) { out.push(await new Promise((res, rej) => entry.file(res, rej))); return; }
    if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

const IN_FLIGHT = 3;
const FAILURE = { 0x0110: 'processing failure', 0xa700: 'out of resources', 0xa900: 'data set does not match SOP class', 0xc000: 'cannot understand', 0x0122: 'SOP class not supported', 0x0111: 'duplicate SOP instance', 0xa770: 'out of resources' };

/** One file per STOW-RS request: its result is that file's. */
async function storeOne(file) {
  const boundary = `dwrs-${crypto.randomUUID()}`;
  const body = new Blob([`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, file, `\r\n--${boundary}--\r\n`]);
  let res;
  try {
    res = await fetch(`${ROOT()}/studies`, {
      method: 'POST', body,
      headers: headers({ 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, Accept: 'application/dicom+json' }),
    });
  } catch (e) { return { state: 'failed', text: `network error: ${e.message}` }; }
  let json = null;
  const text = await res.text();
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  const ds = Array.isArray(json) ? json[0] : json;
  const failed = val(ds, '00081198');
  if (failed && failed.length) {
    const f = failed[0];
    const code = val(f, '00081197')?.[0];
    const why = str(f, '00000902') || FAILURE[code] || 'failed';
    return { state: 'failed', text: `failed (${res.status}${code !== undefined ? `, 0x${code.toString(16).toUpperCase()}` : ''}): ${why}` };
  }
  if (!res.ok) return { state: 'failed', text: `failed (${res.status}): ${json?.error ?? (res.statusText || text.slice(0, 200))}` };
  const ref = val(ds, '00081199')?.[0];
  const warn = val(ref, '00081196')?.[0];
  if (warn !== undefined) return { state: 'warning', text: `stored with warning 0x${warn.toString(16).toUpperCase()}: ${str(ref, '00000902')}` };
  return { state: 'stored', text: 'stored' };
}

async function upload(files) {
  if (!files.length) return;
  $('#progress-box').hidden = false;
  const results = $('#results');
  const bar = $('#progress');
  const total = files.reduce((n, f) => n + f.size, 0) || 1;
  let doneBytes = 0, done = 0, stored = 0, failed = 0;
  bar.max = total; bar.value = 0;
  const show = () => { $('#progress-text').textContent = `${done}/${files.length} files, ${stored} stored, ${failed} failed`; };
  show();
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++];
      const r = await storeOne(file);
      done++; doneBytes += file.size; bar.value = doneBytes;
      if (r.state === 'failed') failed++; else stored++;
      results.append(el('li', { class: r.state }, `${file.webkitRelativePath || file.name}: ${r.text}`));
      show();
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, files.length) }, worker));
  $('#progress-text').textContent += ' — done';
  search();
}

function setupUpload() {
  const drop = $('#drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload(await droppedFiles(e.dataTransfer));
  });
  for (const id of ['#files', '#folder']) {
    $(id).addEventListener('change', (e) => { const files = [...e.target.files]; e.target.value = ''; upload(files); });
  }
}

async function main() {
  try {
    const res = await fetch('/ui-config.json');
    if (res.ok) config = { ...config, ...(await res.json()) };
  } catch { /* defaults */ }
  if (config.viewer) { $('#viewer-link').href = config.viewer; $('#viewer-link').hidden = false; }
  setupAuth();
  setupUpload();
  $('#search-form').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  await search();
  document.body.dataset.ready = 'true';
}
main();
