// Ferry's web page: list, search, upload (resumable, tus 1.0), download,
// delete, and live events, on the hub's own API. Everything shown is set
// as text, never as HTML: names come from other users.
'use strict';

const $ = (id) => document.getElementById(id);
// Sent with every request: a page on another site cannot add it, so the
// hub refuses cross-site requests that change anything.
const CSRF = { 'X-Ferry-Csrf': '1' };
const CHUNK = 8 * 1024 * 1024;
let me = null;
let next = null;

function api(path, options = {}) {
  const headers = { ...CSRF, ...(options.headers || {}) };
  return fetch(path, { ...options, headers, credentials: 'same-origin' });
}

async function failure(response) {
  try {
    return (await response.json()).message;
  } catch {
    return `the hub answered ${response.status}`;
  }
}

function say(text, isError = false) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (isError) item.className = 'error';
  $('events').prepend(item);
  while ($('events').children.length > 50) $('events').lastChild.remove();
}

function human(bytes) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) { n /= 1000; unit += 1; }
  return `${unit === 0 ? n : n.toFixed(1)} ${units[unit]}`;
}

function filePath(name) {
  return '/api/v1/files/' + name.split('/').map(encodeURIComponent).join('/');
}

function mine(owner) {
  return me && (me.role === 'admin' || me.role === 'owner' ||
    owner.toLowerCase() === me.handle.toLowerCase());
}

function row(entry, source) {
  const tr = document.createElement('tr');
  tr.dataset.name = entry.name;
  const cells = [entry.name, human(entry.size), entry.owner, source === 'peer' ? `${entry.owner}'s computer` : 'hub'];
  cells.forEach((text, i) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (i === 1) td.className = 'size';
    tr.append(td);
  });
  const actions = document.createElement('td');
  const link = document.createElement('a');
  link.textContent = 'Download';
  link.setAttribute('download', entry.name.split('/').pop());
  if (source === 'peer') {
    // The hub fetches it from the peer for us, checking it on the way.
    link.href = `/api/v1/peers/${encodeURIComponent(entry.owner)}/` +
      entry.name.split('/').map(encodeURIComponent).join('/');
    actions.append(link);
  } else {
    link.href = filePath(entry.name);
    actions.append(link);
    if (mine(entry.owner)) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Delete';
      remove.setAttribute('aria-label', `Delete ${entry.name}`);
      remove.addEventListener('click', () => removeFile(entry.name));
      actions.append(' ', remove);
    }
  }
  tr.append(actions);
  return tr;
}

async function listFiles(more = false) {
  const query = more && next ? `?cursor=${encodeURIComponent(next)}` : '';
  const response = await api(`/api/v1/files${query}`);
  if (!response.ok) return say(await failure(response), true);
  const page = await response.json();
  if (!more) $('listing').replaceChildren();
  $('listing-title').textContent = 'Files';
  page.files.forEach((entry) => $('listing').append(row(entry, 'store')));
  next = page.next;
  $('more').hidden = !next;
}

async function search(term) {
  const response = await api(`/api/v1/search?q=${encodeURIComponent(term)}`);
  if (!response.ok) return say(await failure(response), true);
  const found = await response.json();
  $('listing').replaceChildren(...found.hits.map((hit) => row(hit, hit.source)));
  $('listing-title').textContent = `Found for “${term}”`;
  $('more').hidden = true;
}

async function removeFile(name) {
  if (!confirm(`Delete ${name} from the hub?`)) return;
  const response = await api(filePath(name), { method: 'DELETE' });
  if (!response.ok) say(await failure(response), true);
}

function base64(text) {
  let binary = '';
  new TextEncoder().encode(text).forEach((b) => { binary += String.fromCharCode(b); });
  return btoa(binary);
}

function patch(url, offset, blob, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PATCH', url);
    xhr.setRequestHeader('Tus-Resumable', '1.0.0');
    xhr.setRequestHeader('Upload-Offset', String(offset));
    xhr.setRequestHeader('Content-Type', 'application/offset+octet-stream');
    xhr.setRequestHeader('X-Ferry-Csrf', '1');
    xhr.upload.onprogress = (e) => progress(offset + e.loaded);
    xhr.onload = () => {
      if (xhr.status === 204) return resolve(Number(xhr.getResponseHeader('Upload-Offset')));
      let message = `the hub answered ${xhr.status}`;
      try { message = JSON.parse(xhr.responseText).message; } catch { /* not JSON */ }
      reject(new Error(message));
    };
    xhr.onerror = () => reject(new Error('the connection failed; retry to resume where it stopped'));
    xhr.send(blob);
  });
}

// Starts or resumes the upload of `file` as `name` (its offset on the hub
// is asked for, so a retry or a reload goes on where it stopped).
async function upload(file, name, item) {
  const bar = item.querySelector('progress');
  const status = item.querySelector('.status');
  const key = `ferry-upload:${name}:${file.size}:${file.lastModified}`;
  status.textContent = 'uploading';
  try {
    let url = localStorage.getItem(key);
    let offset = 0;
    if (url) {
      const head = await api(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
      if (head.ok) offset = Number(head.headers.get('Upload-Offset'));
      else url = null;
    }
    if (!url) {
      const created = await api('/api/v1/uploads', {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(file.size), 'Upload-Metadata': `filename ${base64(name)}` },
      });
      if (!created.ok) throw new Error(await failure(created));
      url = created.headers.get('Location');
      localStorage.setItem(key, url);
    }
    do {
      const end = Math.min(offset + CHUNK, file.size);
      offset = await patch(url, offset, file.slice(offset, end), (done) => { bar.value = done; });
      bar.value = offset;
    } while (offset < file.size);
    localStorage.removeItem(key);
    status.textContent = 'stored';
  } catch (error) {
    status.textContent = error.message;
    status.className = 'status error';
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => {
      retry.remove();
      status.className = 'status';
      upload(file, name, item);
    });
    item.append(retry);
  }
}

function queue(file, name) {
  const item = document.createElement('li');
  const label = document.createElement('span');
  label.textContent = name;
  const bar = document.createElement('progress');
  bar.max = Math.max(file.size, 1);
  bar.value = 0;
  bar.setAttribute('aria-label', `Upload of ${name}`);
  const status = document.createElement('span');
  status.className = 'status';
  item.append(label, bar, status);
  $('uploads').append(item);
  return upload(file, name, item);
}

async function entryFiles(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, fail) => entry.file(ok, fail));
    out.push([file, prefix + entry.name]);
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (batch.length === 0) break;
    for (const child of batch) await entryFiles(child, `${prefix}${entry.name}/`, out);
  }
}

async function dropped(event) {
  event.preventDefault();
  $('drop').classList.remove('over');
  const found = [];
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
  if (entries.every(Boolean)) {
    for (const entry of entries) await entryFiles(entry, '', found);
  } else {
    [...event.dataTransfer.files].forEach((file) => found.push([file, file.name]));
  }
  found.forEach(([file, name]) => queue(file, name));
}

let refresh = null;
function refreshSoon() {
  clearTimeout(refresh);
  refresh = setTimeout(() => { if ($('term').value === '') listFiles(); }, 200);
}

function live() {
  const events = new EventSource('/api/v1/events');
  const on = (kind, text) => events.addEventListener(kind, (e) => {
    const data = JSON.parse(e.data);
    say(text(data));
    refreshSoon();
  });
  on('uploaded', (d) => `${d.handle}: Uploaded ${d.name}`);
  on('deleted', (d) => `${d.handle}: Deleted ${d.name}`);
  on('peer_joined', (d) => `${d.handle} is online`);
  on('peer_left', (d) => `${d.handle} went offline`);
}

async function start() {
  const code = new URLSearchParams(location.hash.slice(1)).get('signin');
  if (code) {
    history.replaceState(null, '', location.pathname);
    const signed = await api('/api/v1/signin', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code }),
    });
    if (!signed.ok) $('notice').textContent = await failure(signed);
  }
  const response = await api('/api/v1/me');
  if (response.status === 401) {
    $('who').textContent = 'Not signed in.';
    $('signin').hidden = false;
    return;
  }
  me = await response.json();
  $('who').textContent = `Signed in as ${me.handle} (${me.role})`;
  $('signout').hidden = false;
  $('app').hidden = false;
  await listFiles();
  live();
}

$('find').addEventListener('submit', (e) => {
  e.preventDefault();
  const term = $('term').value.trim();
  if (term) search(term); else listFiles();
});
$('clear').addEventListener('click', () => { $('term').value = ''; listFiles(); });
$('more').addEventListener('click', () => listFiles(true));
$('files').addEventListener('change', (e) => [...e.target.files].forEach((f) => queue(f, f.name)));
$('folder').addEventListener('change', (e) => [...e.target.files].forEach((f) => queue(f, f.webkitRelativePath || f.name)));
$('drop').addEventListener('dragover', (e) => { e.preventDefault(); $('drop').classList.add('over'); });
$('drop').addEventListener('dragleave', () => $('drop').classList.remove('over'));
$('drop').addEventListener('drop', dropped);
$('signout').addEventListener('click', async () => {
  await api('/api/v1/signout', { method: 'POST' });
  location.reload();
});
start();
