import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import { Marked, type Tokens } from "marked";
import { memo, useMemo, type MouseEvent } from "react";
import { copyText } from "./CopyButton";

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    code({ text, lang }: Tokens.Code): string {
      const language = (lang ?? "").trim().split(/\s+/)[0] ?? "";
      const highlighted =
        language && hljs.getLanguage(language)
          ? hljs.highlight(text, { language, ignoreIllegals: true }).value
          : escapeHtml(text);
      const name = language ? `<span class="code-lang">${escapeHtml(language)}</span>` : "";
      return (
        `<div class="code-block"><div class="code-bar">${name}` +
        `<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>` +
        `<pre><code class="hljs">${highlighted}</code></pre></div>`
      );
    },
  },
});

/** Markdown to safe HTML: rendered by marked, then sanitised by DOMPurify. */
export function renderMarkdown(source: string): string {
  const html = marked.parse(source, { async: false });
  return DOMPurify.sanitize(html, { ADD_ATTR: ["target"] });
}

async function onCopyClick(event: MouseEvent<HTMLDivElement>): Promise<void> {
  const button = (event.target as HTMLElement).closest("button.copy-code");
  if (!button) return;
  const code = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
  const ok = await copyText(code);
  button.textContent = ok ? "Copied" : "Copy failed";
  window.setTimeout(() => {
    button.textContent = "Copy";
  }, 2000);
}

export const Markdown = memo(function Markdown({ source }: { source: string }) {
  const html = useMemo(() => renderMarkdown(source), [source]);
  return <div className="markdown" onClick={(e) => void onCopyClick(e)} dangerouslySetInnerHTML={{ __html: html }} />;
});
