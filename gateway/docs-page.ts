// The API reference at /docs: one self-contained HTML page (no CDN: the service may run offline). The server
// writes the list of endpoints, so the page is useful even without scripts; a small inline script then fetches
// /openapi.json and renders each endpoint's parameters, body fields, examples and responses from it.

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);

const STYLE = `
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
code, pre { font: 13px/1.4 ui-monospace, monospace; background: #f4f4f4; border-radius: 4px }
pre { padding: .6rem; overflow-x: auto }
section { border-top: 1px solid #ddd; margin-top: 1.5rem }
.method { font-weight: bold; text-transform: uppercase; display: inline-block; width: 4.5rem }
table { border-collapse: collapse } td, th { text-align: left; padding: .1rem 1rem .1rem 0; vertical-align: top }
.muted { color: #666 }`;

// Runs in the browser, building DOM nodes with textContent only (nothing from the document is parsed as HTML).
const SCRIPT = `
const el = (tag, text, className) => {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
};
const row = (...cells) => {
  const tr = el('tr');
  cells.forEach(([text, className]) => tr.append(el('td', text, className)));
  return tr;
};

function render(doc) {
  const schemas = doc.components.schemas;
  const resolve = (s) => (s && s.$ref ? schemas[s.$ref.split('/').pop()] : s) || {};
  const typeOf = (s) =>
    s.$ref ? s.$ref.split('/').pop()
    : s.type === 'array' ? typeOf(s.items || {}) + '[]'
    : s.enum ? s.enum.join(' | ')
    : s.type || 'any';
  const RULES = ['minimum', 'maximum', 'minLength', 'maxLength', 'maxItems', 'pattern', 'format', 'default'];
  const rules = (s) => RULES.filter((k) => s[k] !== undefined).map((k) => k + ' ' + JSON.stringify(s[k]));

  // An object's fields: name (* when required), type, and its rules and description; nested objects (limits,
  // files[]) continue in the same table with dotted names. Named schemas stay links to their own section.
  const fields = (schema, table = el('table'), prefix = '') => {
    const s = resolve(schema);
    for (const [name, prop] of Object.entries(s.properties || {})) {
      const required = (s.required || []).includes(name);
      const notes = [...rules(prop), prop.description].filter(Boolean).join('; ');
      table.append(row([prefix + name + (required ? ' *' : '')], [typeOf(prop)], [notes, 'muted']));
      const inner = prop.type === 'array' ? prop.items || {} : prop;
      if (inner.properties) fields(inner, table, prefix + name + (prop.type === 'array' ? '[].' : '.'));
    }
    return table;
  };
  const example = (schema) => {
    const examples = resolve(schema).examples;
    return examples ? [el('p', 'Example:'), el('pre', JSON.stringify(examples[0], null, 2))] : [];
  };

  const out = document.getElementById('details');
  out.textContent = '';
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const section = el('section');
      section.id = method + path;
      const title = el('h3');
      title.append(el('span', method, 'method'), el('code', path));
      section.append(title, el('p', op.summary));
      if (op.description) section.append(el('p', op.description, 'muted'));
      if (op.parameters) {
        const table = el('table');
        for (const p of op.parameters) table.append(row([p.name], [p.in], [typeOf(p.schema || {})], [p.description, 'muted']));
        section.append(el('h4', 'Parameters'), table);
      }
      const body = op.requestBody && op.requestBody.content['application/json'];
      if (body) section.append(el('h4', 'Body: ' + typeOf(body.schema)), fields(body.schema), ...example(body.schema));
      const responses = el('table');
      for (const [status, response] of Object.entries(op.responses)) {
        const content = response.content && Object.values(response.content)[0];
        responses.append(row([status], [content ? typeOf(content.schema) : ''], [response.description, 'muted']));
      }
      section.append(el('h4', 'Responses'), responses);
      out.append(section);
    }
  }
  out.append(el('h2', 'Schemas'));
  for (const [name, schema] of Object.entries(schemas)) {
    const section = el('section');
    section.append(el('h3', name), fields(schema), ...example(schema));
    out.append(section);
  }
}

fetch('/openapi.json')
  .then((res) => res.json())
  .then(render)
  .catch((e) => (document.getElementById('details').textContent = 'could not load /openapi.json: ' + e));`;

export interface DocsSource {
  info: { title: string; description?: string };
  paths: Record<string, Record<string, { summary?: string }>>;
}

export function docsPage(doc: DocsSource): string {
  const index = Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(
      ([method, op]) =>
        `<li><a href="#${escape(method + path)}"><span class="method">${escape(method)}</span>` +
        `<code>${escape(path)}</code></a> ${escape(op.summary ?? '')}</li>`,
    ),
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(doc.info.title)} API reference</title><style>${STYLE}</style></head>
<body><h1>${escape(doc.info.title)} API reference</h1>
<p>${escape(doc.info.description ?? '')}</p>
<p>Authenticate with <code>Authorization: Bearer lid_...</code> (a key from <code>lid tenants create</code>).
Machine-readable: <a href="/openapi.json">/openapi.json</a>.</p>
<h2>Endpoints</h2>
<ul>${index.join('\n')}</ul>
<div id="details"><p class="muted">Loading the details from /openapi.json...</p></div>
<script>${SCRIPT}</script></body></html>`;
}
