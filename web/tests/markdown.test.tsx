import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { Markdown, renderMarkdown } from "../src/components/Markdown";

describe("renderMarkdown", () => {
  it("highlights fenced code and gives it a copy button", () => {
    const html = renderMarkdown("Here:\n\n```python\nprint('hi')\n```");
    expect(html).toContain('class="hljs"');
    expect(html).toContain("hljs-built_in");
    expect(html).toContain('aria-label="Copy code"');
    expect(html).toContain('<span class="code-lang">python</span>');
  });

  it("removes scripts and event handlers", () => {
    const html = renderMarkdown('<img src=x onerror="alert(1)"><script>alert(2)</script>[x](javascript:alert(3))');
    expect(html).not.toMatch(/onerror|<script|javascript:/);
  });

  it("escapes code in a language it does not know", () => {
    expect(renderMarkdown("```nope\n<b>bold</b>\n```")).toContain("&lt;b&gt;bold&lt;/b&gt;");
  });
});

describe("<Markdown>", () => {
  it("copies a code block's text", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    render(<Markdown source={"```js\nconst a = 1;\n```"} />);
    fireEvent.click(screen.getByRole("button", { name: "Copy code" }));
    await vi.waitFor(() => expect(writeText).toHaveBeenCalledWith("const a = 1;"));
    await vi.waitFor(() => expect(screen.getByRole("button", { name: "Copy code" })).toHaveTextContent("Copied"));
  });
});
