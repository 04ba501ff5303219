// Enough Markdown for a model card (headings, lists, tables, code blocks, inline code and bold),
// built as DOM nodes from text, so nothing in the card can inject markup.

function inline(text: string): Node[] {
  const out: Node[] = [];
  const re = /`([^`]+)`|\*\*([^*]+)\*\*/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    const node = document.createElement(m[1] !== undefined ? 'code' : 'strong');
    node.textContent = m[1] ?? m[2]!;
    out.push(node);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

const cells = (line: string): string[] => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());

export function renderMarkdown(source: string): HTMLElement {
  const root = document.createElement('div');
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  let list: HTMLElement | null = null;
  let para: string[] = [];
  const flush = () => {
    if (para.length) {
      const p = document.createElement('p');
      p.append(...inline(para.join(' ')));
      root.append(p);
      para = [];
    }
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('```')) {
      flush();
      const code: string[] = [];
      for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) code.push(lines[i]!);
      const pre = document.createElement('pre');
      pre.textContent = code.join('\n');
      root.append(pre);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      const node = document.createElement(`h${Math.min(6, heading[1]!.length + 2)}`);
      node.append(...inline(heading[2]!));
      root.append(node);
      continue;
    }
    if (line.trim().startsWith('|') && lines[i + 1]?.trim().match(/^\|?\s*:?-{3,}/)) {
      flush();
      const table = document.createElement('table');
      table.className = 'table compact';
      const head = document.createElement('tr');
      for (const c of cells(line)) {
        const th = document.createElement('th');
        th.append(...inline(c));
        head.append(th);
      }
      table.append(head);
      for (i += 2; i < lines.length && lines[i]!.trim().startsWith('|'); i++) {
        const tr = document.createElement('tr');
        for (const c of cells(lines[i]!)) {
          const td = document.createElement('td');
          td.append(...inline(c));
          tr.append(td);
        }
        table.append(tr);
      }
      i--;
      root.append(table);
      continue;
    }
    const item = /^\s*[-*]\s+(.*)$/.exec(line);
    if (item) {
      if (para.length) flush();
      if (!list) {
        list = document.createElement('ul');
        root.append(list);
      }
      const li = document.createElement('li');
      li.append(...inline(item[1]!));
      list.append(li);
      continue;
    }
    if (line.trim() === '') {
      flush();
      continue;
    }
    list = null;
    para.push(line.trim());
  }
  flush();
  return root;
}
